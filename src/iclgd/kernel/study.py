"""Study kernel declares itself (iclgd.core.studies): where its kNN and symbol extras run, its prompt sets for
the start-up context check, and the config key that sizes its claim (held-out queries)."""

from __future__ import annotations

from typing import Any

from iclgd.core import context
from iclgd.core.config import ConfigError, Run, Scope, as_listed
from iclgd.core.paper import latex_escape
from iclgd.core.studies import StudySpec


def _check(config: dict[str, Any]) -> None:
    kernel = config["kernel"]
    if kernel["knn"] and kernel["knn_pool"] < kernel["n_demos"]:
        raise ConfigError(f"config key kernel.knn_pool: the kNN demonstrations come from this pool, so it needs at "
                          f"least kernel.n_demos = {kernel['n_demos']} rows (got {kernel['knn_pool']})")


def _resolve(scope: Scope) -> tuple[dict, dict]:
    """The kernel block as the study reads it. extras_datasets is a CPU-budget choice within the study:
    restricted to its datasets ([] = all of them); if it names none of them, kNN and symbols run nowhere."""
    cfg, kernel, notes = scope.config["kernel"], scope.study, scope.notes
    block = {**cfg, "models": list(kernel.models), "datasets": list(kernel.datasets)}
    chosen = cfg["extras_datasets"]
    if chosen and not any(d in kernel.datasets for d in chosen):
        notes.append(f"config key kernel.extras_datasets: {chosen} names none of the kernel datasets "
                     f"{list(kernel.datasets)}; kNN and symbols run nowhere")
        return block | {"knn": False, "symbols": [], "extras_datasets": []}, {}
    block["extras_datasets"] = as_listed("kernel.extras_datasets", chosen, kernel.datasets, notes, "kernel datasets")
    symbols = cfg["symbols"]
    for name in block["extras_datasets"] or kernel.datasets:
        if symbols and len(scope.registry[name]["classes"]) > len(symbols):
            raise ConfigError(f"config key kernel.symbols: {len(symbols)} symbols, but {name!r} (where kNN and "
                              f"symbols run: kernel.extras_datasets) has {len(scope.registry[name]['classes'])} "
                              "classes")
    return block, {}


def _demands(run: Run, config: dict[str, Any]) -> list[context.Demand]:
    block, pairs = run.blocks["kernel"], run.pairs["kernel"]
    return [context.Demand("kernel.n_demos", d, block["n_demos"], block["n_prompt_sets"],
                           tuple(m for m, pair_d in pairs if pair_d == d)) for d in run.studies["kernel"].datasets]


def _knob(row: Any, cfg: dict[str, Any]) -> tuple[str, float, float, float]:
    """Held-out queries = (test + extra training queries) x (1 - select_fraction); the key counts the extra
    training queries on top of the test queries."""
    kernel, queries = cfg["kernel"], cfg["kernel"]["n_queries"] or cfg["data"]["n_test"]
    extra = kernel["n_train_queries"]
    return "kernel.n_train_queries", extra, row.n / (queries + extra), queries


def _scale(run: Run) -> tuple[list[str], list[str]]:
    block = run.blocks["kernel"]
    left = "; ".join(f"{latex_escape(s['model'])} on {latex_escape(s['dataset'])}" for s in block["skip"])
    return [], ([f"Left out of the kernel study because {block['n_demos']} demonstrations exceed the model's "
                 f"context window (start-up check): {left}."] if left else [])


STUDY = StudySpec(
    name="kernel", title="ICL as kernel regression (Han et al. 2023)", position=70, check=_check,
    dataset_keys=lambda config: {"kernel.extras_datasets": config["kernel"]["extras_datasets"]},
    resolve=_resolve, demands=_demands, knob=_knob, scale=_scale,
)

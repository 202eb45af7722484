"""Study finetune declares itself (iclgd.core.studies): which (model, dataset) pairs are fine-tuned (the
models of finetune.models on every dataset, then the untrained controls on control.datasets), on which
demonstration seeds, with which grid, and the config key that sizes its claims."""

from __future__ import annotations

from typing import Any

from iclgd.core.config import Run, Scope, as_listed
from iclgd.core.paper import latex_escape
from iclgd.core.provenance import names
from iclgd.core.studies import StudySpec, prompt_sets_knob


def _resolve(scope: Scope) -> tuple[dict, dict]:
    """finetune.demo_seeds keeps "[] = all of icl.demo_seeds" in the block; extra["demo_seeds"] is concrete."""
    config = scope.config
    seeds = config["icl"]["demo_seeds"]
    chosen = as_listed("finetune.demo_seeds", config["finetune"]["demo_seeds"], seeds, scope.notes, "icl.demo_seeds")
    block = {**config["finetune"], "models": list(scope.study.models), "demo_seeds": chosen}
    return block, {"demo_seeds": tuple(chosen or seeds)}


def _pairs(run: Run) -> tuple[tuple[str, str], ...]:
    """(model, dataset) ICL vs GD compares: fine-tuned models on every dataset, then controls on theirs."""
    compared = [(m, d) for m in run.studies["finetune"].models for d in run.datasets]
    return tuple(compared + [(m, d) for m in run.control.models for d in run.control.datasets])


def grid(run: Run, model: str | None = None) -> dict[str, Any]:
    """The fine-tuning grid's settings (the finetune block minus its pipeline keys), with `model`'s own
    learning rates from finetune.lrs_by_model when it has them, and the (optimizer, subset) it skips."""
    block = run.blocks["finetune"]
    settings = {k: v for k, v in block.items() if k not in ("models", "demo_seeds", "lrs_by_model")}
    if model in block["lrs_by_model"]:
        settings["lrs"] = block["lrs_by_model"][model]
    settings["skip"] = [[s["optimizer"], s["subset"]] for s in block["skip"] if s["model"] == model]
    return settings


def demo_seeds(run: Run) -> tuple[int, ...]:
    """The demonstration seeds fine-tuned, concretely."""
    return run.extra["finetune"]["demo_seeds"]


def _training(run: Run) -> list[tuple[str, str, str, str, int]]:
    out = []
    for model in dict.fromkeys(m for m, _ in run.pairs["finetune"]):
        settings = grid(run, model)
        out += [("finetune", model, o, s, settings["batch_tokens"], f"{{model: {model}, optimizer: {o}, subset: {s}}}")
                for o in settings["optimizers"] for s in settings["subsets"] if [o, s] not in settings["skip"]]
    return out


def _scale(run: Run) -> tuple[list[str], list[str]]:
    block, models = run.blocks["finetune"], list(run.studies["finetune"].models)
    seeds, by_model = block.get("demo_seeds") or "all", block.get("lrs_by_model") or {}
    lrs = "; ".join(f"{latex_escape(m)}: {names(by_model[m] if m in by_model else block['lrs'])}" for m in models)
    ran = (f"Fine-tuning ran for {names(models)} (of {names(run.models)}) on demonstration seeds "
           f"{names(seeds) if seeds != 'all' else 'all'}, with optimizers {names(block['optimizers'])}, "
           f"parameter subsets {names(block['subsets'])}, learning rates ({lrs}), each run until it had learned "
           f"its demonstrations (mean label loss below {block['target_loss']} nats, every label the argmax) or "
           f"{block['max_epochs']} epochs (the published grid: 4 learning rates, 200 epochs).")
    left = "; ".join(f"{s['optimizer']} on {s['subset']} of {latex_escape(s['model'])}" for s in block["skip"])
    return [ran], ([f"Fine-tuning runs left out because they cannot fit the device's memory (start-up check): "
                    f"{left}."] if left else [])


STUDY = StudySpec(
    name="finetune", title="ICL vs fine-tuning on the same demonstrations (Shen et al. 2023)", position=20,
    model_keys=lambda config: {"finetune.lrs_by_model": list(config["finetune"]["lrs_by_model"])},
    resolve=_resolve, pairs=_pairs, training=_training, knob=prompt_sets_knob, scale=_scale,
)

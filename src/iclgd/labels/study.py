"""Study labels declares itself (iclgd.core.studies): its datasets may end with the novel task (arbitrary label
words over the inputs of labels.novel.sources), whose sources the run then reads; its contexts for the
start-up context check; the config key that sizes its claims (repetitions: random contexts)."""

from __future__ import annotations

from typing import Any

from iclgd.core import context
from iclgd.core.config import ConfigError, Run, Study, restrict
from iclgd.core.paper import latex_escape
from iclgd.core.provenance import names
from iclgd.core.studies import StudySpec


def _check(config: dict[str, Any]) -> None:
    novel = config["labels"]["novel"]
    if len(novel["words"]) != len(novel["sources"]):
        raise ConfigError(f"config key labels.novel.words: one label word per source in labels.novel.sources "
                          f"(got {novel['words']} for {novel['sources']})")


def _dataset_keys(config: dict[str, Any]) -> dict[str, list[str]]:
    labels = config["labels"]
    return {"labels.datasets": [d for d in labels["datasets"] if d != labels["novel"]["name"]],
            "labels.novel.sources": labels["novel"]["sources"]}


def _choose_datasets(config: dict[str, Any], notes: list[str]) -> tuple[str, ...]:
    """labels.datasets against `datasets`, the novel task kept when named (its sources need no prompt sets)."""
    chosen, novel = config["labels"]["datasets"], config["labels"]["novel"]["name"]
    real = [d for d in chosen if d != novel]
    if chosen and not real:
        return (novel,)
    kept = restrict("labels.datasets", real, config["datasets"], notes, "datasets")
    return kept + ((novel,) if novel in chosen else ())


def _reads(config: dict[str, Any], study: Study) -> list[str]:
    novel = config["labels"]["novel"]
    return list(novel["sources"]) if novel["name"] in study.datasets else []


def novel_name(run: Run) -> str:
    """The novel task's name (labels.novel.name)."""
    return run.blocks["labels"]["novel"]["name"]


def _demands(run: Run, config: dict[str, Any]) -> list[context.Demand]:
    block, out = run.blocks["labels"], []
    for d in run.studies["labels"].datasets:
        models = tuple(m for m, pair_d in run.pairs["labels"] if pair_d == d)
        novel = d == novel_name(run)
        out.append(context.Demand("labels.n_demos", d, block["n_demos"], block["repetitions"], models,
                                  block["novel"]["max_chars"] if novel else None,
                                  tuple(block["novel"]["sources"]) if novel else ()))
    return out


def _scale(run: Run) -> tuple[list[str], list[str]]:
    block = run.blocks["labels"]
    ran = (f"Label-relationship curves ran for {names(run.studies['labels'].models)} with {block['n_demos']} "
           f"demonstrations and {block['repetitions']} random contexts per condition (the paper: 500).")
    left = "; ".join(f"{latex_escape(s['model'])} on {latex_escape(s['dataset'])}" for s in block["skip"])
    return [ran], ([f"Left out of the curves because {block['n_demos']} demonstrations exceed the model's "
                    f"context window (start-up check): {left}."] if left else [])


def _knob(row: Any, cfg: dict[str, Any]) -> tuple[str, float, float, float]:
    """Random contexts are the unit: one per repetition."""
    return "labels.repetitions", cfg["labels"]["repetitions"], 1.0, 0.0


STUDY = StudySpec(
    name="labels", title="ICL learns label relationships, but not as conventional learning (Kossen et al. 2023)",
    position=60, with_datasets=False, check=_check, dataset_keys=_dataset_keys, choose_datasets=_choose_datasets,
    reads=_reads, demands=_demands, knob=_knob, scale=_scale, renamed={"curves": "labels"},
)

"""Study order declares itself (iclgd.core.studies): orderings must be distinct permutations, the prompt set it
reads (order.n_demos, order.demo_seed) joins the shared grid, and its training settings are checked against
the device at start-up."""

from __future__ import annotations

import math
from typing import Any

from iclgd.core.config import ConfigError, Run
from iclgd.core.paper import latex_escape
from iclgd.core.studies import StudySpec


def _check(config: dict[str, Any]) -> None:
    order = config["order"]
    if order["orderings"] > math.factorial(order["n_demos"]):
        raise ConfigError(f"config key order.orderings: at most order.n_demos! = {math.factorial(order['n_demos'])} "
                          f"distinct orderings of {order['n_demos']} demonstrations (got {order['orderings']})")


def order_block(run: Run, model: str) -> dict[str, Any]:
    """The order block as `model`'s run reads it: its optimizers minus those order.skip leaves out."""
    block = run.blocks["order"]
    skipped = {s["optimizer"] for s in block["skip"] if s["model"] == model}
    return block | {"optimizers": [o for o in block["optimizers"] if o not in skipped]}


def _training(run: Run) -> list[tuple[str, str, str, str, int]]:
    out = []
    for model in run.studies["order"].models:
        block = order_block(run, model)
        out += [("order", model, o, block["subset"], block["batch_tokens"], f"{{model: {model}, optimizer: {o}}}")
                for o in block["optimizers"]]
    return out


def _scale(run: Run) -> tuple[list[str], list[str]]:
    left = "; ".join(f"{s['optimizer']} for {latex_escape(s['model'])}" for s in run.blocks["order"]["skip"])
    return [], ([f"Left out of the order experiment (device memory): {left}."] if left else [])


STUDY = StudySpec(
    name="order", title="Order sensitivity of ICL and fine-tuning (Shen et al. 2023)", position=30,
    check=_check, prompt_needs=lambda block: ([block["n_demos"]], [block["demo_seed"]]), training=_training,
    scale=_scale,
)

"""Prompt lengths against each model's context window, checked when the workflow starts.

A prompt longer than the model's window does not fail loudly: positions past `max_position_embeddings`
get rotary angles the model never saw (LLaMa-1: 2048), so a 33-demonstration AG News context would be
scored, wrongly, hours into a run. Before any job runs, `check` estimates for every (config block,
dataset, model) the longest prompt the run will build and raises a ConfigError naming the block's key
when it does not fit. No truncation policy: a setting that does not fit is the user's to change.

The estimate: a prompt is BOS + k demonstrations drawn from the train pool + one query. From the
token lengths of (up to) `SAMPLE` rendered train demonstrations and test queries, the longest of the
block's R prompts is taken as k*mean + z_R*sd*sqrt(k) + the longest query, z_R the normal quantile at
1 - 1/(2R) (sum of k draws, normal approximation). The forward pass still refuses any prompt past
the window (`forward.check_length`), so what the estimate misses fails with a clear error, not a
silently wrong score. Token lengths are cached per (tokenizer, dataset) under ~/.cache/iclgd, so
the check costs a tokenizer load once per machine.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from scipy.stats import norm

from iclgd.core import prompts

#: Rendered train demonstrations / test queries whose token lengths the estimate uses.
SAMPLE = 2000
#: Shared by every working directory: the key holds all a result depends on.
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "iclgd", "context")
#: `models.tiny_llama`'s window (its LlamaConfig sets max_position_embeddings=4096).
TINY_WINDOW = 4096


class ContextError(ValueError):
    """A configured prompt that cannot fit a model's context window."""


@dataclass(frozen=True)
class Demand:
    """The prompts one config block builds on one dataset: `k` demonstrations each, `n_prompts` of them."""

    key: str  # the config key that sets k, e.g. "labels.n_demos"
    dataset: str
    k: int
    n_prompts: int
    models: tuple[str, ...]
    max_chars: int | None = None  # text fields cut to this many characters (the novel task's inputs)
    sources: tuple[str, ...] = ()  # a task whose demonstrations mix these datasets' inputs (the novel task)


@dataclass(frozen=True)
class Lengths:
    """Token lengths of one dataset's rendered demonstrations (separator included) and queries."""

    demo_mean: float
    demo_sd: float
    query_max: int
    special: int  # tokens the tokenizer adds itself (BOS)

    def longest(self, k: int, n_prompts: int) -> int:
        """Estimated longest of `n_prompts` prompts of k demonstrations."""
        z = norm.ppf(1 - 1 / (2 * max(n_prompts, 1)))
        return math.ceil(self.special + k * self.demo_mean + z * self.demo_sd * math.sqrt(k) + self.query_max)

    def typical(self, k: int) -> int:
        return math.ceil(self.special + k * self.demo_mean + self.query_max)


def lengths(tokenizer, spec: dict[str, Any], train, test, seed: int = 0, max_chars: int | None = None) -> Lengths:
    """Token lengths of (a seeded sample of) the dataset's demonstrations and queries as prompts render them."""
    from iclgd.core import forward  # torch-heavy: only on a cache miss

    rng = np.random.default_rng(seed)
    rows = train.iloc[np.sort(rng.choice(len(train), size=min(SAMPLE, len(train)), replace=False))]
    sep = prompts.DEMO_SEPARATOR

    def cut(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r | {f: str(r[f])[:max_chars] for f in spec["fields"]} for r in records] if max_chars else records

    demos = [sep + prompts.render_demo(spec["template"], spec["verbalizer"], r) for r in cut(rows.to_dict("records"))]
    queries = [sep + prompts.render_query(spec["template"], r) for r in cut(test.head(SAMPLE).to_dict("records"))]
    # encoded as they follow earlier text (prefix: a dummy-prefix tokenizer adds no bare "▁" there)
    demo_len = np.array([len(forward.encode_query(tokenizer, t, prefix="x")) for t in demos], dtype=float)
    query_len = [len(forward.encode_query(tokenizer, t, prefix="x")) for t in queries]
    return Lengths(float(demo_len.mean()), float(demo_len.std(ddof=1)) if len(demo_len) > 1 else 0.0,
                   max(query_len), len(forward.encode_prefix(tokenizer, "")))


def cached(parts: list[Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """compute(), read from / written to a JSON file under CACHE keyed by `parts` (what the result depends on)."""
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    path = Path(CACHE, key[:24] + ".json")
    if path.exists():
        return json.loads(path.read_text())
    found = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(found))
    tmp.replace(path)
    return found


def mixture(parts: list[Lengths]) -> Lengths:
    """Lengths of demonstrations drawn evenly from several datasets (the novel task's sources)."""
    mean = sum(p.demo_mean for p in parts) / len(parts)
    second = sum(p.demo_sd ** 2 + p.demo_mean ** 2 for p in parts) / len(parts)
    return Lengths(mean, math.sqrt(max(second - mean ** 2, 0.0)), max(p.query_max for p in parts),
                   max(p.special for p in parts))


def window_of(config_json: Path) -> int | None:
    """max_position_embeddings of a Hugging Face config.json (nested text_config for Gemma 3)."""
    if not config_json.exists():
        return None
    cfg = json.loads(config_json.read_text())
    return cfg.get("max_position_embeddings") or cfg.get("text_config", {}).get("max_position_embeddings")


def check_demand(demand: Demand, model: str, window: int, where: str, found: Lengths) -> None:
    """ContextError naming the block's key, the dataset and the model when its prompts do not fit."""
    longest, typical = found.longest(demand.k, demand.n_prompts), found.typical(demand.k)
    if longest <= window:
        return
    how = (f"a typical prompt has ~{typical} tokens" if typical > window else
           f"the longest of its {demand.n_prompts} prompts has ~{longest} tokens (typical ~{typical})")
    raise ContextError(
        f"config key {demand.key}: {demand.k} demonstrations of {demand.dataset!r} do not fit {model!r}'s "
        f"context of {window} tokens ({where}): {how}. Lower {demand.key}, or leave {demand.dataset!r} out "
        f"of that block for {model!r} (README \"Context length\")")


def check(demands: list[Demand], windows: Mapping[str, tuple[int, str] | None],
          lengths_of: Callable[[str, str], Lengths | None]) -> list[str]:
    """Check every demand on every model whose window is known; ContextError at the first that does not fit.

    `windows[model]`: (window, where it was read) or None; `lengths_of(model, demand)`: the token
    lengths, or None when the model's tokenizer is not on disk yet. Returns one note per unchecked model.
    """
    unchecked: dict[str, str] = {}
    for demand in demands:
        for model in demand.models:
            if windows.get(model) is None:
                unchecked[model] = "its context window is not known before rule prepare_model"
                continue
            found = lengths_of(model, demand)
            if found is None:
                unchecked[model] = "its tokenizer is not on disk before rule prepare_model"
                continue
            check_demand(demand, model, *windows[model], found)
    return [f"context length of {m!r} not checked at start-up: {why} (the forward pass still refuses "
            "over-long prompts)" for m, why in unchecked.items()]

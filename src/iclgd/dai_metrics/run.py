"""The Dai et al. (2023) stage: zero-shot, ICL and Dai-style fine-tuning of one model on one dataset's
prompt sets, each captured (`capture`) on the same seeded subset of test queries.

Dai et al. fine-tune only the attention key/value projections with SGD (batch 1, one step per
demonstration, in the ICL order, one epoch) and compare three runs on the same test example: the base
model zero-shot (ZS), the base model with the demonstrations (ICL) and the fine-tuned model zero-shot (FT).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from iclgd.core import forward, training
from iclgd.dai_metrics.capture import FIELDS, DaiError, capture, capture_arrays

#: The three runs every metric compares.
CONDITIONS = ("zs", "icl", "ft")


@dataclass(frozen=True)
class DaiConfig:
    """The `dai` config block as the stage reads it; defaults and value checks live in the schema."""

    n_demos: tuple[int, ...]  # prompt sets with these k
    demo_seeds: tuple[int, ...]  # ... and these demonstration seeds; () = every seed of the prompt file
    lr: float
    epochs: int
    n_queries: int | None  # None = every test query
    seed: int

    @classmethod
    def from_dict(cls, block: dict[str, Any]) -> DaiConfig:
        """From the validated block (its pipeline-level `models` / `datasets` are not the stage's)."""
        n_queries = block["n_queries"]
        return cls(
            n_demos=tuple(int(k) for k in block["n_demos"]),
            demo_seeds=tuple(int(s) for s in block["demo_seeds"] or ()),
            lr=float(block["lr"]),  # PyYAML reads 1e-3 (no dot) as a string
            epochs=int(block["epochs"]),
            n_queries=None if n_queries is None else int(n_queries),
            seed=int(block["seed"]),
        )


def select_prompt_sets(prompt_sets: Sequence[dict[str, Any]], cfg: DaiConfig) -> list[dict[str, Any]]:
    """The prompt sets the stage runs: k in dai.n_demos, seed in dai.demo_seeds (all if empty), default order
    only."""
    chosen = [
        ps for ps in prompt_sets
        if ps["k"] in cfg.n_demos and (not cfg.demo_seeds or ps["seed"] in cfg.demo_seeds)
        and ps.get("order", 0) == 0
    ]
    missing = set(cfg.n_demos) - {ps["k"] for ps in chosen}
    if missing:
        raise DaiError(f"config key dai.n_demos: no prompt sets with k = {sorted(missing)} (is it in icl.n_demos?)")
    return sorted(chosen, key=lambda ps: (ps["k"], ps["seed"]))


def pick_queries(prompt_sets: Sequence[dict[str, Any]], n: int | None, seed: int) -> list[dict[str, Any]]:
    """A seeded subset of the test queries (in their file order); every prompt set must share them."""
    queries = list(prompt_sets[0]["queries"])
    uids = [q["uid"] for q in queries]
    for ps in prompt_sets[1:]:
        if [q["uid"] for q in ps["queries"]] != uids:
            raise DaiError(f"prompt sets k={ps['k']} seed={ps['seed']} have other test queries than the first")
    if n is None or n >= len(queries):
        return queries
    idx = np.sort(np.random.default_rng(seed).choice(len(queries), size=n, replace=False))
    return [queries[i] for i in idx]


def update_norm(model, saved: dict[str, torch.Tensor]) -> float:
    """‖θ_FT − θ_base‖ over the trained parameters: how far fine-tuning moved (0 means it did nothing)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        return float(sum(((params[n].detach().cpu() - w) ** 2).sum() for n, w in saved.items()) ** 0.5)


def run_dai(
    model, tokenizer, prompt_sets: Sequence[dict[str, Any]], cfg: DaiConfig, progress: bool = True
) -> tuple[dict[str, np.ndarray], pd.DataFrame, pd.DataFrame]:
    """Capture ZS once, then per prompt set ICL, Dai-style fine-tuning and FT (zero-shot prompt).

    Fine-tuning follows Dai et al.: SGD on k_proj + v_proj only, batch size 1, one step per demonstration
    in the prompt's order, `cfg.epochs` epochs, the label token's cross-entropy (`training.train`). The base
    weights are restored after every prompt set. Returns (arrays for np.savez, per-query correctness, one
    row per prompt set with losses, update norm and timings).
    """
    sets = select_prompt_sets(prompt_sets, cfg)
    queries = pick_queries(sets, cfg.n_queries, cfg.seed)
    texts = [q["query"] for q in queries]
    classes, words = sets[0]["classes"], sets[0]["label_words"]
    if any(ps["classes"] != classes or ps["label_words"] != words for ps in sets):
        raise DaiError("prompt sets of one dataset disagree on classes or label words")
    label_ids = forward.label_token_ids(tokenizer, words)
    gold = np.array([classes.index(q["label"]) for q in queries])
    started = time.perf_counter()
    zs = capture(model, tokenizer, "", texts, label_ids, progress)
    zs_seconds = time.perf_counter() - started
    names = training.select_parameters(model, "kv")
    saved = training.snapshot(model, names)
    icl_caps, ft_caps, frames, runs = [], [], [], []
    for ps in tqdm(sets, desc="dai prompt sets", disable=not progress):
        t0 = time.perf_counter()
        icl = capture(model, tokenizer, ps["prefix"], texts, label_ids, progress)
        t1 = time.perf_counter()
        examples = training.encode_examples(tokenizer, training.demo_queries(ps), classes, label_ids)
        with training.trainable(model, names, saved) as params:
            result = training.train(model, examples, "sgd", cfg.lr, cfg.epochs, params)
            with torch.no_grad():
                final_loss = float(training.label_loss(model, examples).item())
            moved = update_norm(model, saved)
            t2 = time.perf_counter()
            ft = capture(model, tokenizer, "", texts, label_ids, progress)
            t3 = time.perf_counter()
        icl_caps.append(icl)
        ft_caps.append(ft)
        frames.append(pd.DataFrame({
            "k": ps["k"], "seed": ps["seed"], "uid": [q["uid"] for q in queries], "label_index": gold,
            **{f"{name}_pred": cap.label_logprobs.argmax(axis=1) for name, cap in (("zs", zs), ("icl", icl), ("ft", ft))},
        }))
        runs.append({
            "k": ps["k"], "seed": ps["seed"], "n_steps": len(examples) * cfg.epochs, "lr": cfg.lr,
            "epochs": cfg.epochs, "first_loss": result.losses[0], "final_loss": final_loss,
            "update_norm": moved, "icl_capture_seconds": t1 - t0, "train_seconds": t2 - t1,
            "ft_capture_seconds": t3 - t2, "zs_capture_seconds": zs_seconds,
        })
    correct = pd.concat(frames, ignore_index=True)
    for name in CONDITIONS:
        correct[f"{name}_correct"] = correct[f"{name}_pred"] == correct["label_index"]
    arrays: dict[str, np.ndarray] = {
        "k": np.array([ps["k"] for ps in sets], dtype=np.int64),
        "seed": np.array([ps["seed"] for ps in sets], dtype=np.int64),
        "uid": np.array([q["uid"] for q in queries], dtype=np.uint64),
        "label_index": gold,
        **capture_arrays("zs", zs),
    }
    for name, caps in (("icl", icl_caps), ("ft", ft_caps)):
        for field in FIELDS:
            arrays[f"{name}_{field}"] = np.stack([getattr(c, field) for c in caps])
    return arrays, correct, pd.DataFrame(runs)

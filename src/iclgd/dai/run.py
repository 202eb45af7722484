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
from iclgd.dai.capture import FIELDS, DaiError, capture, capture_arrays

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
    texts = [query["query"] for query in queries]
    classes, label_ids = _label_ids(tokenizer, sets)
    gold = np.array([classes.index(query["label"]) for query in queries])
    started = time.perf_counter()
    zero_shot = capture(model, tokenizer, "", texts, label_ids, progress)
    zs_seconds = time.perf_counter() - started
    names = training.select_parameters(model, "kv")
    base = (names, training.snapshot(model, names))
    icl_caps, ft_caps, frames, runs = [], [], [], []
    for prompt_set in tqdm(sets, desc="dai prompt sets", disable=not progress):
        icl, fine_tuned, run = _icl_and_fine_tuned(model, tokenizer, prompt_set, texts, label_ids, base, cfg, progress)
        icl_caps.append(icl)
        ft_caps.append(fine_tuned)
        frames.append(_predictions(prompt_set, queries, gold, {"zs": zero_shot, "icl": icl, "ft": fine_tuned}))
        runs.append({**run, "zs_capture_seconds": zs_seconds})
    arrays = _capture_arrays(sets, queries, gold, zero_shot, icl_caps, ft_caps)
    return arrays, _correctness(frames), pd.DataFrame(runs)


def _label_ids(tokenizer, sets: Sequence[dict[str, Any]]) -> tuple[list[str], list[int]]:
    """The classes and label-word token ids every prompt set shares: one dataset's sets must agree on them."""
    classes, words = sets[0]["classes"], sets[0]["label_words"]
    if any(prompt_set["classes"] != classes or prompt_set["label_words"] != words for prompt_set in sets):
        raise DaiError("prompt sets of one dataset disagree on classes or label words")
    return classes, forward.label_token_ids(tokenizer, words)


def _icl_and_fine_tuned(model, tokenizer, prompt_set: dict[str, Any], texts: list[str], label_ids, base: tuple,
                        cfg: DaiConfig, progress: bool) -> tuple[Any, Any, dict[str, Any]]:
    """ICL capture, Dai-style fine-tuning on the prompt set's demonstrations and the FT capture, with the
    base weights (`base` = trained names, their snapshot) restored afterwards; plus the run's row."""
    names, saved = base
    started = time.perf_counter()
    icl = capture(model, tokenizer, prompt_set["prefix"], texts, label_ids, progress)
    icl_done = time.perf_counter()
    examples = training.encode_examples(tokenizer, training.demo_queries(prompt_set), prompt_set["classes"],
                                        label_ids)
    with training.trainable(model, names, saved) as params:
        result = training.train(model, examples, "sgd", cfg.lr, cfg.epochs, params)
        with torch.no_grad():
            final_loss = float(training.label_loss(model, examples).item())
        moved = update_norm(model, saved)
        trained = time.perf_counter()
        fine_tuned = capture(model, tokenizer, "", texts, label_ids, progress)
        ft_done = time.perf_counter()
    run = {
        "k": prompt_set["k"], "seed": prompt_set["seed"], "n_steps": len(examples) * cfg.epochs, "lr": cfg.lr,
        "epochs": cfg.epochs, "first_loss": result.losses[0], "final_loss": final_loss,
        "update_norm": moved, "icl_capture_seconds": icl_done - started, "train_seconds": trained - icl_done,
        "ft_capture_seconds": ft_done - trained,
    }
    return icl, fine_tuned, run


def _predictions(prompt_set: dict[str, Any], queries: list[dict[str, Any]], gold: np.ndarray,
                 captures: dict[str, Any]) -> pd.DataFrame:
    """One row per query of one prompt set: the gold label and each run's label-restricted prediction."""
    return pd.DataFrame({
        "k": prompt_set["k"], "seed": prompt_set["seed"], "uid": [query["uid"] for query in queries],
        "label_index": gold,
        **{f"{name}_pred": cap.label_logprobs.argmax(axis=1) for name, cap in captures.items()},
    })


def _correctness(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The prompt sets' predictions, each run's correctness beside them."""
    correct = pd.concat(frames, ignore_index=True)
    for name in CONDITIONS:
        correct[f"{name}_correct"] = correct[f"{name}_pred"] == correct["label_index"]
    return correct


def _capture_arrays(sets, queries, gold: np.ndarray, zero_shot, icl_caps: list, ft_caps: list
                    ) -> dict[str, np.ndarray]:
    """The arrays np.savez stores: prompt-set and query ids, gold labels, ZS once and ICL / FT per set."""
    arrays: dict[str, np.ndarray] = {
        "k": np.array([prompt_set["k"] for prompt_set in sets], dtype=np.int64),
        "seed": np.array([prompt_set["seed"] for prompt_set in sets], dtype=np.int64),
        "uid": np.array([query["uid"] for query in queries], dtype=np.uint64),
        "label_index": gold,
        **capture_arrays("zs", zero_shot),
    }
    for name, caps in (("icl", icl_caps), ("ft", ft_caps)):
        for field in FIELDS:
            arrays[f"{name}_{field}"] = np.stack([getattr(cap, field) for cap in caps])
    return arrays

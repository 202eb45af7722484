"""Metrics the studies share: accuracy with bootstrap confidence intervals over test examples, and
Dai et al.'s Rec2FTP.

Seeds (demonstration samples) are averaged *within* each test example before resampling, so the
interval reflects test-set sampling with the seed variation folded into each example's score
rather than pretending seeds x examples are independent draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from iclgd.core.stats import bootstrap_ci

#: Columns that identify one experimental setting in a records table.
SETTING = ["model", "dataset", "method", "k", "optimizer", "subset", "lr", "epoch"]


def add_correctness(records: pd.DataFrame) -> pd.DataFrame:
    """Label-restricted correctness (argmax over label tokens) next to the full-vocabulary one."""
    out = records.copy()
    out["label_correct"] = (out["pred_index"] == out["label_index"]).astype(float)
    out["full_correct"] = out["full_correct"].astype(float)
    return out


def accuracy_table(records: pd.DataFrame, n_boot: int, ci: float, seed: int) -> pd.DataFrame:
    """One row per setting: label-restricted and full-vocabulary accuracy (%) with CIs."""
    scored = add_correctness(records)
    rows = []
    for key, group in scored.groupby(SETTING, sort=True):
        row = dict(zip(SETTING, key))
        per_example = group.groupby("uid")[["label_correct", "full_correct"]].mean()
        for metric in ("label_correct", "full_correct"):
            name = "acc" if metric == "label_correct" else "acc_full"
            mean, lo, hi = bootstrap_ci(per_example[metric].to_numpy(), n_boot, ci, seed)
            row |= {name: 100 * mean, f"{name}_lo": 100 * lo, f"{name}_hi": 100 * hi}
        row |= {"n_examples": len(per_example), "n_seeds": group["seed"].nunique()}
        rows.append(row)
    columns = [*SETTING, *(f"{n}{s}" for n in ("acc", "acc_full") for s in ("", "_lo", "_hi")), "n_examples", "n_seeds"]
    return pd.DataFrame(rows, columns=columns)  # the columns also when nothing was scored (read back by later rules)


def per_seed_accuracy(records: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of each demonstration seed separately: the spread ICL is known for."""
    scored = add_correctness(records)
    table = scored.groupby(SETTING + ["seed"], sort=True)[["label_correct", "full_correct"]].mean() * 100
    return table.rename(columns={"label_correct": "acc", "full_correct": "acc_full"}).reset_index()


def rec2ftp(zero_correct: ArrayLike, ft_correct: ArrayLike, icl_correct: ArrayLike) -> tuple[float, int]:
    """(#{ZS wrong ∧ FT right ∧ ICL right} / #{ZS wrong ∧ FT right}, #{ZS wrong ∧ FT right}).

    Dai et al.'s "recall to fine-tuning predictions": of the examples fine-tuning newly gets right, the share
    ICL gets right too. The denominator is returned because small ones make the share noisy; an empty
    denominator gives (NaN, 0), undefined rather than 0 or 1.
    """
    zero, fine_tuned, icl = (np.asarray(flags, dtype=bool).ravel() for flags in (zero_correct, ft_correct, icl_correct))
    if not len(zero) == len(fine_tuned) == len(icl):
        raise ValueError(f"correctness vectors differ in length: {len(zero)}, {len(fine_tuned)}, {len(icl)}")
    fixed = ~zero & fine_tuned
    n_fixed = int(fixed.sum())
    return (float(icl[fixed].mean()) if n_fixed else float("nan")), n_fixed


def label_logprobs_renormalised(label_logprobs: ArrayLike) -> np.ndarray:
    """log p(c) = l_c − logsumexp(l): the full-vocabulary label log-probs renormalised over the classes."""
    lp = np.asarray(label_logprobs, dtype=float)
    top = lp.max(axis=-1, keepdims=True)
    return lp - (top + np.log(np.exp(lp - top).sum(axis=-1, keepdims=True)))


def label_probs(label_logprobs: ArrayLike) -> np.ndarray:
    """p(c) = exp(l_c) / Σ_c' exp(l_c'): the label distribution (softmax of the label log-probs)."""
    return np.exp(label_logprobs_renormalised(label_logprobs))

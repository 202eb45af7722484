"""Accuracy metrics with bootstrap confidence intervals over test examples.

Seeds (demonstration samples) are averaged *within* each test example before resampling, so the
interval reflects test-set sampling with the seed variation folded into each example's score
rather than pretending seeds x examples are independent draws.
"""

from __future__ import annotations

import pandas as pd
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

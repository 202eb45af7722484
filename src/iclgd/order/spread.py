"""Order sensitivity (Shen et al. 2023, Theorem 1): the spread of one method's output across demonstration
orderings, per test example and per setting.

Full-batch GD is permutation-invariant, so its output cannot move when the demonstrations are reordered;
any spread of ICL's output argues against the two being equivalent. Spreads are read from the stored
records (`iclgd.compare.distributions` documents them): the label log-probs and the top-10 tokens.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from iclgd.core.metrics import label_probs

#: One order-sensitivity setting; the spread is taken over `order` within it, per test example.
ORDER_BY = ("model", "dataset", "method", "k", "seed", "optimizer", "subset", "lr", "epoch")


def _spread(values: np.ndarray, ddof: int) -> float:
    """Mean over columns of the std over rows (orderings); one ordering spreads by 0 by definition.

    Rows are first shifted by the first row (the std is shift-invariant), so identical orderings give
    exactly 0 rather than a rounding residue of the mean: full-batch GD's invariance is tested as == 0.
    """
    if len(values) < 2:
        return 0.0
    return float(np.std(values - values[:1], axis=0, ddof=ddof).mean())


def order_spread_examples(
    records: pd.DataFrame, by: Sequence[str] = ORDER_BY, over: str = "order", ddof: int = 0
) -> pd.DataFrame:
    """Per test example (by + uid), the spread of the output across the orderings in column `over`.

    With sd_o the standard deviation over orderings o (numpy ddof, default 0: population std of the
    orderings actually run; ddof=1 gives the sample std), and n_orders = 1 giving 0 for every spread:

    - label_std = mean_c sd_o p_o(c), p_o the label distribution renormalised over the classes;
    - vocab_label_std = mean_c sd_o exp(l_o(c)), the exact full-vocabulary probabilities of the label tokens;
    - top10_std = mean_{t ∈ U} sd_o π_o(t), U the union of the orderings' top-10 ids, π_o(t) the stored
      probability if t is in ordering o's top 10 and 0 otherwise (the distribution truncated to its top 10;
      the true value lies in [0, that ordering's 10th probability), so this is the spread of the truncation);
    - top1_std = sd_o of the full-vocabulary top-1 probability (exact).
    """
    by = list(by)
    if len(records) < 1:
        raise ValueError("order_spread needs at least one record")
    duplicate = records.duplicated([*by, "uid", over])
    if duplicate.any():
        raise ValueError(f"{int(duplicate.sum())} rows with duplicate keys {[*by, 'uid', over]}")
    rows = []
    for key, group in records.groupby([*by, "uid"], dropna=False, sort=True):
        group = group.sort_values(over)
        label_logprobs = np.stack(group["label_logprobs"].to_numpy()).astype(float)
        top1 = np.array([np.max(probs) for probs in group["top10_probs"]])
        rows.append(
            dict(zip([*by, "uid"], key))
            | {
                "n_orders": len(group),
                "label_std": _spread(label_probs(label_logprobs), ddof),
                "vocab_label_std": _spread(np.exp(label_logprobs), ddof),
                "top10_std": _spread(_truncated_top10(group), ddof),
                "top1_std": _spread(top1[:, None], ddof),
            }
        )
    return pd.DataFrame(rows)


def _truncated_top10(group: pd.DataFrame) -> np.ndarray:
    """(orderings x union of their top-10 ids): each ordering's stored top-10 probabilities, 0 elsewhere,
    so orderings whose top 10 differ are compared on the same tokens."""
    union = sorted(set().union(*(np.asarray(ids).tolist() for ids in group["top10_ids"])))
    column_of = {token: column for column, token in enumerate(union)}
    truncated = np.zeros((len(group), len(union)))
    for row, (ids, probs) in enumerate(zip(group["top10_ids"], group["top10_probs"])):
        truncated[row, [column_of[token] for token in np.asarray(ids).tolist()]] = probs
    return truncated


def order_spread(
    records: pd.DataFrame, by: Sequence[str] = ORDER_BY, over: str = "order", ddof: int = 0
) -> pd.DataFrame:
    """One row per `by` group: the means over test examples of `order_spread_examples`' spreads.

    n_orders is the number of distinct `over` values in the group (examples missing an ordering use the
    ones they have); n_examples the number of test examples.
    """
    per_example = order_spread_examples(records, by, over, ddof)
    spreads = ["label_std", "vocab_label_std", "top10_std", "top1_std"]
    by = list(by)
    table = per_example.groupby(by, dropna=False, sort=True)[spreads].mean()
    counts = records.groupby(by, dropna=False, sort=True).agg(
        n_orders=(over, "nunique"), n_examples=("uid", "nunique")
    )
    return table.join(counts).reset_index()[[*by, "n_orders", "n_examples", *spreads]]


class Welford:
    """Running mean and sum of squared deviations over orderings, per query and token.

    One update per ordering with its (queries x vocab) probabilities; memory is two float64
    arrays of that shape, whatever R is. Identical updates leave m2 exactly 0 (delta is 0), so an
    order-invariant method gets a spread of exactly 0, not a rounding residue.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def update(self, probs: np.ndarray) -> None:
        """Add one ordering's (queries x vocab) probabilities."""
        probs = np.asarray(probs, dtype=np.float64)
        self.count += 1
        if self.mean is None:
            self.mean, self.m2 = probs.copy(), np.zeros_like(probs)
            return
        if probs.shape != self.mean.shape:
            raise ValueError(f"update of shape {probs.shape}, expected {self.mean.shape}")
        delta = probs - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (probs - self.mean)

    def variance(self) -> np.ndarray:
        """Population variance over the updates (0 for a single one)."""
        if self.m2 is None:
            raise ValueError("no updates")
        return np.maximum(self.m2, 0.0) / self.count  # m2 >= 0 in exact arithmetic

    def summary(self) -> dict[str, np.ndarray]:
        """Per query (row): "vocab" = mean_t sd(t) and "vocab_l2" = sqrt(sum_t var(t))."""
        variance = self.variance()
        return {"vocab": np.sqrt(variance).mean(axis=1), "vocab_l2": np.sqrt(variance.sum(axis=1))}

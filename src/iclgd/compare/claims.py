"""Shen et al.'s reference claim as tested statements (rows of the claims table; `iclgd.core.claims` adds power
and verdicts): ``shen_permuted``, "ICL agrees more with its own permuted-order version than with GD": per
model, top-10 overlap of ICL with ICL reordered minus with GD, crossed t over demonstration sets x examples."""

from __future__ import annotations

import pandas as pd

from iclgd.compare import report
from iclgd.core import crossed


def permutation_claims(examples: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Shen et al.'s reference claim per model, from `compare_report.icl_gd_examples` (with permuted records):
    top-10 overlap of ICL with itself reordered minus with GD, crossed t over demonstration sets x examples."""
    gap = report.permutation_gap(examples)
    rows = []
    for model, g in gap.groupby("model", sort=True):
        g = g.assign(variant=g["optimizer"] + "/" + g["subset"])
        settings = crossed.setting_labels(g, ["dataset", "k", "variant"])
        rows.append({
            "paper": "Shen et al.", "family": "shen_permuted", "model": model, "dataset": "all", "expected_sign": 1,
            "claim": "ICL agrees more with itself in another demonstration order than with GD: top-10 overlap, "
                     "permuted $-$ GD ($N \\ge 2$)",
            "evidence": "Tab.~\\ref{tab:compare}", "target": "compare", **crossed.crossed_row(g, g["gap"], settings, alpha),
        })
    return pd.DataFrame(rows)

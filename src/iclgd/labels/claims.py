"""Kossen et al.'s headline contrasts as tested statements (rows of the claims table; `iclgd.core.claims`
adds power and verdicts): ``kossen_<claim>_<metric>_<contrast>``, one Holm family per contrast over
models and datasets, each a one-sample t test over random contexts (each context draws its own
demonstrations and queries, so contexts are the independent units) of a per-context gap (default - random,
flipped late - first, default - flipped, D->F - F->D).

On the novel task (arbitrary label words, no pretraining preference) "default accuracy - flipped agreement"
has expected value 0: those rows are negative controls, in their own family and block, judged by an
equivalence test and never counted as replications.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd

from iclgd.core import stats
from iclgd.labels import curves

log = logging.getLogger(__name__)


#: Kossen et al. headline contrasts: (claim, contrast, metric, condition or None, expected sign, text).
KOSSEN = [
    ("labels_matter", "default - random", "loglik", None, +1,
     "Predictions depend on the in-context labels: log-lik.\\ of the true label, default $-$ random labels"),
    ("flip_learned", "last - position 1", "agree_presented", "flipped", +1,
     "Flipped labels are learned: agreement with flipped labels, late $-$ first position"),
    ("flip_learned", "default correct - flipped", "agree_presented", "flipped", +1,
     "Pretraining preference not fully overcome: default accuracy $-$ flipped agreement (late)"),
    ("recency", "D->F - F->D", "correct", "default_to_flipped", -1,
     "Recency: at equal label counts, agreement with the default labels D$\\to$F $-$ F$\\to$D"),
]


def gap_rows(frame: pd.DataFrame, claim: str, contrast: str, metric: str, condition: str | None) -> pd.Series:
    """The rows of `frame` (claims.csv or claim samples) holding one gap; `condition` None: any condition."""
    sel = (frame["claim"] == claim) & (frame["contrast"] == contrast) & (frame["metric"] == metric)
    return sel & (frame["condition"] == condition) if condition is not None else sel


def kossen_family(claim: str, metric: str, contrast: str) -> str:
    """One Holm family per headline contrast: two contrasts of one claim key are different hypotheses."""
    return f"kossen_{claim}_{metric}_{re.sub(r'[^a-z0-9]+', '_', contrast.lower()).strip('_')}"


#: (claim, contrast) pairs whose novel-task rows are negative controls (no pretraining preference to overcome).
CONTROLS = {("flip_learned", "default correct - flipped")}


def kossen_tests(table: pd.DataFrame, cfg: dict[str, Any], n_boot: int, ci: float, seed: int,
                 alpha: float = 0.05) -> pd.DataFrame:
    """One-sample t (vs 0) over random contexts of each headline gap, per (model, dataset)."""
    novel = cfg.get("novel", {}).get("name", "novel")
    samples = curves.claim_samples(table, cfg, n_boot=n_boot, ci=ci, seed=seed)
    rows = []
    for claim, contrast, metric, condition, sign, text in KOSSEN:
        for _, row in samples[gap_rows(samples, claim, contrast, metric, condition)].iterrows():
            values = np.asarray(row["samples"], dtype=float)
            test = stats.t_one_sample(values, alpha)
            control = (claim, contrast) in CONTROLS and row["dataset"] == novel
            family = kossen_family(claim, metric, contrast) + ("_control" if control else "")
            plan = {"test": "t", "n": test["n"], "sd": test["sd"], "se": test["se"], "df": test["df"],
                    "max_effect": 50 * test["sd"] if test["sd"] > 0 else 1.0}
            rows.append({"paper": "Kossen et al.", "family": family, "claim": text,
                         "model": row["model"], "dataset": row["dataset"], "expected_sign": 0 if control else sign,
                         "negative_control": control, "n_contexts": test["n"],
                         "evidence": "Fig.~\\ref{fig:curves}, Tab.~\\ref{tab:label_claims}",
                         "target": "labels_paper_numbers", "unit": "contexts", "plan": plan,
                         **{k: test[k] for k in ("test", "effect", "effect_lo", "effect_hi", "tost_lo", "tost_hi", "p",
                                                 "n", "se", "df")}})
    return pd.DataFrame(rows)

"""Kossen et al.'s headline contrasts as tested statements (rows of the claims table; `iclgd.core.claims`
adds power and verdicts): ``kossen_<claim>_<metric>_<contrast>``, one Holm family per contrast over
models and datasets, each a one-sample Wilcoxon over random contexts of a per-context gap (default -
random, flipped late - first, default - flipped, D->F - F->D).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pandas as pd

from iclgd.core import stats
from iclgd.label_relationships import curves

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


def kossen_family(claim: str, metric: str, contrast: str) -> str:
    """One Holm family per headline contrast: two contrasts of one claim key are different hypotheses."""
    return f"kossen_{claim}_{metric}_{re.sub(r'[^a-z0-9]+', '_', contrast.lower()).strip('_')}"


def kossen_tests(table: pd.DataFrame, cfg: dict[str, Any], n_boot: int, ci: float, seed: int) -> pd.DataFrame:
    """One-sample Wilcoxon (vs 0) over random contexts of each headline gap, per (model, dataset)."""
    samples = curves.claim_samples(table, cfg, n_boot=n_boot, ci=ci, seed=seed)
    rows = []
    for claim, contrast, metric, condition, sign, text in KOSSEN:
        sel = (samples["claim"] == claim) & (samples["contrast"] == contrast) & (samples["metric"] == metric)
        if condition is not None:
            sel &= samples["condition"] == condition
        for _, row in samples[sel].iterrows():
            values = np.asarray(row["samples"], dtype=float)
            test = stats.wilcoxon(values, np.zeros_like(values), n_boot, seed, ci)
            rows.append({"paper": "Kossen et al.", "family": kossen_family(claim, metric, contrast), "claim": text,
                         "model": row["model"], "dataset": row["dataset"], "expected_sign": sign,
                         "evidence": "Fig.~\\ref{fig:curves}, Tab.~\\ref{tab:label_claims}",
                         "target": "label_paper_numbers", "test": "wilcoxon", "unit": "contexts", "samples": values,
                         **{k: test[k] for k in ("effect", "effect_lo", "effect_hi", "p", "n")}})
    return pd.DataFrame(rows)

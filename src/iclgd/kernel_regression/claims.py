"""Han et al.'s claim as a tested statement (a row of the claims table; `iclgd.core.claims` adds power and
verdicts): ``han_kernel``, the best head's held-out agreement with ICL above a constant vote (exact
binomial).
"""

from __future__ import annotations

import pandas as pd


def kernel_claims(summary: pd.DataFrame) -> pd.DataFrame:
    """Han et al.'s reconstruction claim per (model, dataset): the best head (chosen on the selection part)
    reproduces ICL's prediction on the held-out queries more often than a constant vote (one-sided exact
    binomial, from the kernel stage). effect = held-out agreement - that baseline."""
    rows = []
    if summary.empty:
        return pd.DataFrame(rows)
    for r in summary.sort_values(["model", "dataset"]).itertuples():
        base = float(r.eval_const_agreement)
        rows.append({
            "paper": "Han et al.", "family": "han_kernel", "model": r.model, "dataset": r.dataset, "expected_sign": 1,
            "claim": "A kernel-regression head reproduces ICL's prediction on held-out queries: agreement $-$ "
                     "constant-vote baseline",
            "effect": float(r.eval_agreement) - base, "effect_lo": float(r.eval_agreement_lo) - base,
            "effect_hi": float(r.eval_agreement_hi) - base, "p": float(r.eval_agreement_p), "n": int(r.n_eval),
            "evidence": "Tab.~\\ref{tab:kernel}", "target": "kernel_regression", "test": "binomial",
            "unit": "held-out queries", "baseline": base,
        })
    return pd.DataFrame(rows)

"""Han et al.'s claim as a tested statement (a row of the claims table; `iclgd.core.claims` adds power and
verdicts): ``han_kernel``, the best head's held-out agreement with ICL above a constant vote, by the
one-sided exact McNemar of head-agrees vs constant-agrees on the same held-out queries (the baseline is
measured on those very queries, so a binomial test against it as a fixed rate would be anti-conservative).
"""

from __future__ import annotations

import pandas as pd


def kernel_claims(summary: pd.DataFrame) -> pd.DataFrame:
    """Han et al.'s reconstruction claim per (model, dataset): the best head (chosen on the selection part)
    reproduces ICL's prediction on the held-out queries more often than a constant vote. effect = held-out
    agreement - the constant vote's agreement on the same queries (paired)."""
    rows = []
    if summary.empty:
        return pd.DataFrame(rows)
    for r in summary.sort_values(["model", "dataset"]).itertuples():
        n = int(r.n_eval)
        discordant = (r.eval_head_only + r.eval_const_only) / n if n else 0.0
        plan = {"test": "mcnemar-exact", "n": n, "discordant": discordant, "se": float(r.eval_diff_se),
                "df": n - 1, "max_effect": 1.0}
        rows.append({
            "paper": "Han et al.", "family": "han_kernel", "model": r.model, "dataset": r.dataset, "expected_sign": 1,
            "claim": "A kernel-regression head reproduces ICL's prediction on held-out queries: agreement $-$ "
                     "constant-vote agreement (paired)",
            "effect": float(r.eval_diff), "effect_lo": float(r.eval_diff_lo), "effect_hi": float(r.eval_diff_hi),
            "tost_lo": float(r.eval_diff_tost_lo), "tost_hi": float(r.eval_diff_tost_hi), "se": float(r.eval_diff_se),
            "df": float(n - 1), "p": float(r.eval_agreement_p), "n": n, "n_queries": n,
            "evidence": "Tab.~\\ref{tab:kernel}", "target": "kernel", "test": "mcnemar-exact",
            "unit": "held-out queries", "baseline": float(r.eval_const_agreement), "plan": plan,
        })
    return pd.DataFrame(rows)

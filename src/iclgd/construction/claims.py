"""The construction's claims: exact computations (no sampling error), each checked against a stated
criterion -- rows of the claims table with test "exact" (`iclgd.core.claims` keeps their verdict)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def construction_claims(headline: dict[str, float], sparsity: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Deterministic claims: a stated criterion on an exact computation (no p-value, no CI)."""
    at = sparsity[np.isclose(sparsity["threshold"], threshold)]
    qk = at[at["proj"].isin(["q_proj", "k_proj"])]
    gap = float((qk["constructed"] - qk["measured"]).min()) if len(qk) else np.nan
    rows = [
        ("Trained on the ICL objective, linear self-attention implements one GD step: prediction cosine",
         headline["final_pred_cosine"], headline["final_pred_cosine"] > 0.99, "> 0.99", "lsa_study"),
        ("Full-batch GD (and the construction) is order-invariant: std over orderings",
         headline["order_std_constructed"], headline["order_std_constructed"] < 1e-12, "< 1e-12", "lsa_study"),
        (f"Constructed $W_Q, W_K$ are far sparser than real ones: smallest gap in fraction $|w| < {threshold:g}$",
         gap, bool(gap > 0.5), "> 0.5", "construction_paper_numbers"),
    ]
    return pd.DataFrame(
        [{"paper": "Shen et al.", "family": "construction", "claim": text, "model": "", "dataset": "",
          "effect": value, "effect_lo": np.nan, "effect_hi": np.nan, "p": np.nan, "n": np.nan, "expected_sign": 1,
          "criterion": crit, "verdict": "reproduced" if ok else "not reproduced", "target": target,
          "evidence": "Fig.~\\ref{fig:lsa}, Tab.~\\ref{tab:sparsity}"}
         for text, value, ok, crit, target in rows]
    )

"""Shared by the claims tests (core: the table and its LaTeX; each study's own rows): the claims config, one
hand-made row of each kind (Shen's crossed t, a Kossen t, Han's McNemar, the construction's exact rows, a toy
study's t), and a table holding every verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from iclgd.construction import claims as construction_claims
from iclgd.core import claims, crossed
from iclgd.kernel import claims as kernel_claims
from iclgd.kernel import summaries


CFG = {"alpha": 0.05, "power": 0.8, "references": {
    "shen_pooled": {"sesoi": 0.05, "why": "declared, Cohen's f^2 ~ small"},
    "kossen_x": {"seed": 0.3, "source": "Fig. 1"},
    "kossen_x_control": {"sesoi": 0.1, "why": "a third of the seed's contrast"},
    "han_kernel": {"seed": 0.8, "level": True, "seed_baseline": [0.5, 0.6], "source": "Table 2"},
}}


SHEN_PARTS = crossed.Parts(set=0.001, example=0.0005, residual=0.0002, df_set=4, df_example=39, df_both=156)


def shen_row(**over) -> dict:
    var, df = SHEN_PARTS.variance()
    return {"paper": "Shen et al.", "family": "shen_pooled", "claim": "ICL and GD differ", "model": "all",
            "dataset": "all", "expected_sign": 0, "effect": -0.1, "effect_lo": -0.2, "effect_hi": -0.05,
            "tost_lo": -0.18, "tost_hi": -0.06, "p": 0.001, "se": math.sqrt(var), "df": df, "n": 5, "n_sets": 5,
            "n_examples": 40, "test": "crossed-t", "unit": "sets x examples", "evidence": "", "target": "claims",
            "plan": {"test": "crossed-t", "parts": SHEN_PARTS, "n": 5.0, "max_effect": 0.3}} | over


def kossen_row(dataset: str, effect: float, lo: float, hi: float, p: float, se: float, n: int, **over) -> dict:
    sd = se * math.sqrt(n)
    return {"paper": "Kossen et al.", "family": "kossen_x", "claim": "c", "model": "m", "dataset": dataset,
            "expected_sign": +1, "effect": effect, "effect_lo": lo, "effect_hi": hi, "tost_lo": lo, "tost_hi": hi,
            "p": p, "se": se, "df": n - 1.0, "n": n, "n_contexts": n, "evidence": "", "target": "t", "test": "t",
            "unit": "contexts", "plan": {"test": "t", "n": n, "sd": sd, "se": se, "df": n - 1.0, "max_effect": 2 * sd}
            } | over


def construction() -> pd.DataFrame:
    return construction_claims.construction_claims(
        {"final_pred_cosine": 0.9995, "order_std_constructed": 1e-16},
        pd.DataFrame({"proj": ["q_proj", "k_proj"], "threshold": [1e-3, 1e-3], "measured": [0.01, 0.02],
                      "constructed": [0.9999, 0.9999]}), 1e-3)


def han_summary(head_only: int, const_only: int, both: int, neither: int, dataset: str = "d") -> pd.DataFrame:
    """A kernel summary row from eval_agreement_stats: the constant vote is class 0 (the selection part's
    majority), ICL predicts 0 where the constant agrees."""
    agree = [True] * head_only + [False] * const_only + [True] * both + [False] * neither
    pred_ev = [1] * head_only + [0] * const_only + [0] * both + [1] * neither
    st = summaries.eval_agreement_stats(np.array(agree), np.array(pred_ev), np.array([0, 0, 1]), seed=0, n_boot=200,
                                        ci=0.95)
    return pd.DataFrame([{"model": "m", "dataset": dataset, "n_eval": len(agree),
                          "eval_agreement": float(np.mean(agree)), **st}])


def full_table() -> pd.DataFrame:
    controls = pd.DataFrame([
        kossen_row("novel", 0.01, -0.03, 0.05, 0.6, 0.02, 20, family="kossen_x_control", expected_sign=0,
                   negative_control=True),  # inside the margin 0.1: t = -4.5 at the upper side
        kossen_row("novel2", 0.3, 0.2, 0.4, 1e-4, 0.05, 20, family="kossen_x_control", expected_sign=0,
                   negative_control=True),  # clearly nonzero: the control failed
    ])
    kossen = pd.DataFrame([
        kossen_row("a", 0.5, 0.35, 0.65, 0.001, 0.07, 20),  # far bound 0.65 reaches 0.3
        kossen_row("b", 0.15, 0.1, 0.2, 0.001, 0.025, 20),  # decided, far bound 0.2 < 0.3
        kossen_row("c", -0.2, -0.3, -0.1, 0.002, 0.05, 20),  # decided on the other side
        kossen_row("d", 0.0, -0.05, 0.05, 0.9, 0.025, 20),  # non-superiority t = -12: absent
        kossen_row("e", 0.1, -0.5, 0.7, 0.7, 0.3, 10),  # non-superiority t = -0.67: inconclusive
        kossen_row("f", np.nan, np.nan, np.nan, np.nan, np.nan, 10),  # no test
    ])
    # 18 head-only, 0 const-only over a 0.5 baseline: far bound 0.18 + 1.98 x 0.0386 = 0.257, between the
    # reference range's ends 0.25 (kappa 0.5 x 0.5) and 0.3 (kappa 0.6 x 0.5)
    kernel = kernel_claims.kernel_claims(han_summary(18, 0, 50, 32))
    return claims.claims_table([controls, pd.DataFrame([shen_row()]), kossen, kernel], [construction()], CFG)


def toy_row(effect: float = 0.3, se: float = 0.05, n: int = 40) -> dict:
    """A one-sample t test's row, as a study builds it (iclgd.labels.claims has the real ones)."""
    sd, half = se * math.sqrt(n), 2.02 * se
    return {"paper": "Toy", "family": "toy_effect", "claim": "a toy effect", "model": "m", "dataset": "d",
            "expected_sign": 1, "effect": effect, "effect_lo": effect - half, "effect_hi": effect + half,
            "tost_lo": effect - 0.8 * half, "tost_hi": effect + 0.8 * half, "p": 1e-6, "se": se, "df": n - 1.0,
            "n": n, "evidence": "", "target": "toy", "test": "t", "unit": "contexts",
            "plan": {"test": "t", "n": n, "sd": sd, "se": se, "df": n - 1.0, "max_effect": 2 * sd}}

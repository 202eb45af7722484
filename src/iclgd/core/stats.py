"""Tests of the claims table and the verdicts drawn from their intervals.

Every test returns a plain dict with the shared keys ``effect``, ``effect_lo``, ``effect_hi`` (the 95 %
CI), ``tost_lo``, ``tost_hi`` (the (1 - 2 alpha) CI of the equivalence test) and ``p``, so rows from
different tests stack into one frame that `iclgd.core.claims` turns into Holm-adjusted verdicts. Crossed
designs (demonstration sets x test examples) live in `iclgd.core.crossed`; here: the one-sample t over
independent units (random contexts), the exact McNemar of two classifiers on the same queries, Holm, the
bootstrap every table uses, and `verdict`.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as _sm_mcnemar
from statsmodels.stats.multitest import multipletests

#: Below this many discordant pairs the chi-square approximation is poor, so McNemar goes exact.
EXACT_BELOW = 25

#: A claim's verdict, from its intervals judged against its reference effect (`verdict`).
VERDICTS = ("reproduced", "reproduced, smaller than the reference", "contradicted", "absent", "inconclusive",
            "not tested")
#: A negative control's verdict (expected effect 0): equivalent to 0, or a failed control.
CONTROL_VERDICTS = ("null, as expected", "control failed", "inconclusive", "not tested")


def _paired(a: Any, b: Any, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """1-D arrays of equal length; unequal lengths mean the pairing is broken, which is an error."""
    x, y = np.asarray(a, dtype=dtype).ravel(), np.asarray(b, dtype=dtype).ravel()
    if len(x) != len(y):
        raise ValueError(f"paired samples must have equal lengths, got {len(x)} and {len(y)}")
    return x, y


def bootstrap_ci(values: Any, n_boot: int, ci: float, seed: int, axis: int | None = None):
    """(mean, lo, hi): the percentile bootstrap of a mean, seeded so tables are reproducible; the one
    bootstrap every table uses.

    axis=None: all values as one sample (floats out). axis=0: every column of a (repetitions, K)
    array from one set of resampled rows (arrays out). A constant or single-value sample has no
    resampling variability, so it gets a zero-width interval instead of scipy's NaNs and warnings.
    """
    values = np.asarray(values, dtype=float)
    if axis is None:
        values = values.ravel()
    if values.shape[0] == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    mean = values.mean(axis=0)
    if axis is None and (len(values) < 2 or np.all(values == values[0])):
        return float(mean), float(mean), float(mean)
    if axis is not None and len(values) < 2:
        return mean, mean.copy(), mean.copy()
    res = stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=ci, method="percentile",
                          rng=np.random.default_rng(seed), axis=0)
    if axis is None:
        return float(mean), float(res.confidence_interval.low), float(res.confidence_interval.high)
    return mean, res.confidence_interval.low, res.confidence_interval.high


def mcnemar(a: Any, b: Any, n_boot: int, seed: int, ci: float) -> dict[str, Any]:
    """McNemar test of two classifiers' correct/incorrect on the same examples.

    Only discordant pairs carry information about which is better. With fewer than 25 of them the
    exact binomial test is used (the chi-square approximation is unreliable there), otherwise the
    continuity-corrected chi-square. ``effect`` = acc(a) - acc(b); its CI resamples examples
    jointly (paired bootstrap), which equals bootstrapping the per-example differences.
    """
    x, y = _paired(a, b, bool)
    if len(x) == 0:
        raise ValueError("mcnemar needs at least one paired example")
    a_only, b_only = int(np.sum(x & ~y)), int(np.sum(~x & y))
    both, neither = int(np.sum(x & y)), int(np.sum(~x & ~y))
    exact = a_only + b_only < EXACT_BELOW
    if a_only + b_only == 0:  # identical verdicts on every example: no evidence of a difference
        statistic, p = 0.0, 1.0
    else:
        res = _sm_mcnemar([[both, a_only], [b_only, neither]], exact=exact, correction=True)
        statistic, p = float(res.statistic), float(res.pvalue)
    effect, lo, hi = bootstrap_ci(x.astype(float) - y.astype(float), n_boot, ci, seed)
    return {"test": "mcnemar", "n": len(x), "n_a_only": a_only, "n_b_only": b_only, "statistic": statistic,
            "p": min(p, 1.0), "exact": exact, "effect": effect, "effect_lo": lo, "effect_hi": hi}


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (controls the family-wise error, valid under any dependence).

    NaN entries (tests that could not be run) stay NaN and are not counted in the family size.
    """
    p = np.asarray(list(pvalues), dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out




def decided_side(effect: float, effect_lo: float, effect_hi: float, p_adj: float, alpha: float = 0.05) -> int:
    """+1 / -1 when the test decides the sign (adjusted p < alpha *and* the CI on one side of 0), else 0.

    Requiring both guards against a significant p whose interval (from a different procedure, e.g. the
    bootstrap) still straddles zero. A test without a CI (an F test) decides on p alone, by its effect's sign.
    """
    if p_adj is None or np.isnan(p_adj) or not p_adj < alpha:
        return 0
    if np.isnan(effect_lo) and np.isnan(effect_hi):
        return int(np.sign(effect)) if not np.isnan(effect) else 0
    if effect_lo > 0:
        return 1
    if effect_hi < 0:
        return -1
    return 0


def t_one_sample(values: Any, alpha: float = 0.05) -> dict[str, Any]:
    """Two-sided one-sample t test of mean = 0 over independent units (e.g. random contexts, each with its
    own demonstrations), with the 95 % and the (1 - 2 alpha) CI. Per-unit gaps are means over several
    positions, so the t reference is close; tests/core/test_calibration.py checks it on 0/1-derived gaps."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        raise ValueError(f"t_one_sample needs at least two units, got {len(x)}")
    mean, sd, n = float(x.mean()), float(x.std(ddof=1)), len(x)
    return {"test": "t", "sd": sd, "n": n} | t_interval(mean, sd / np.sqrt(n), n - 1, alpha)


def t_interval(estimate: float, se: float, df: float, alpha: float = 0.05) -> dict[str, float]:
    """A t-distributed estimate's two-sided p (vs 0), its (1 - alpha) CI and the (1 - 2 alpha) CI of the
    equivalence test; a zero SE gives a point interval and p 0 or 1."""
    if se == 0:
        p, q1, q2 = (1.0 if estimate == 0 else 0.0), 0.0, 0.0
    else:
        p = float(2 * stats.t.sf(abs(estimate) / se, df))
        q1, q2 = stats.t.ppf(1 - alpha / 2, df), stats.t.ppf(1 - alpha, df)
    return {"effect": float(estimate), "se": float(se), "df": float(df), "p": p,
            "effect_lo": float(estimate - q1 * se), "effect_hi": float(estimate + q1 * se),
            "tost_lo": float(estimate - q2 * se), "tost_hi": float(estimate + q2 * se)}


def t_power(noncentrality: float, df: float, alpha: float) -> float:
    """Two-sided t test power at `alpha` (noncentral t; statsmodels' TTestPower gets NaN where scipy's far
    tail underflows, so that tail, ~0, is taken as 0)."""
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, noncentrality) + np.nan_to_num(stats.nct.cdf(-crit, df, noncentrality)))


def mcnemar_greater(a: Any, b: Any, alpha: float = 0.05) -> dict[str, Any]:
    """One-sided exact McNemar: is classifier a right more often than b on the same queries?

    For a baseline measured on the very queries it is compared on (a constant vote's agreement with ICL):
    a binomial test against that plug-in rate ignores its sampling error (type-I error 0.072 at
    nominal 0.05 in `iclgd.core.calibration`). Conditional on the n_a_only + n_b_only discordant queries, n_a_only is
    Binomial(n_d, 1/2) under the null. effect = acc(a) - acc(b); its CIs are t intervals of the per-query
    differences (paired), the 95 % one and the (1 - 2 alpha) one of the non-superiority check.
    """
    x, y = _paired(a, b, bool)
    a_only, b_only = int(np.sum(x & ~y)), int(np.sum(~x & y))
    n_d = a_only + b_only
    p = float(stats.binomtest(a_only, n_d, 0.5, alternative="greater").pvalue) if n_d else 1.0
    diff = x.astype(float) - y.astype(float)
    t = t_one_sample(diff, alpha) if len(diff) > 1 else {"effect_lo": np.nan, "effect_hi": np.nan,
                                                        "tost_lo": np.nan, "tost_hi": np.nan, "se": np.nan}
    return {"test": "mcnemar-exact", "n": len(x), "n_a_only": a_only, "n_b_only": b_only, "p": p,
            "effect": float(diff.mean()), **{k: t[k] for k in ("effect_lo", "effect_hi", "tost_lo", "tost_hi", "se")}}


def tost_p(effect: float, se: float, df: float, margin: float, expected_sign: int) -> float:
    """p of the equivalence test against the margin |reference|, for a t-distributed estimate.

    Directed claim (expected_sign +-1): non-superiority, H0: the effect on the claimed side is at least the
    margin. Undirected (0) and negative controls: TOST, the larger of the two one-sided p. NaN margin: NaN.
    """
    margin = abs(margin)
    if not margin > 0 or np.isnan(effect) or not se >= 0:
        return np.nan
    if se == 0:
        inside = abs(effect) < margin if expected_sign == 0 else expected_sign * effect < margin
        return 0.0 if inside else 1.0
    upper = float(stats.t.cdf((effect - margin) / se, df))  # H0: effect >= margin
    lower = float(stats.t.sf((effect + margin) / se, df))  # H0: effect <= -margin
    if expected_sign > 0:
        return upper
    if expected_sign < 0:
        return lower
    return max(upper, lower)


def verdict(effect: float, effect_lo: float, effect_hi: float, p_adj: float, p_tost_adj: float,
            expected_sign: int, reference: float, alpha: float = 0.05) -> str:
    """A claim's verdict from its Holm-adjusted test and equivalence p and its 95 % interval.

    - reproduced: significant on the claimed side (either side for an undirected claim) and the CI's far
      bound reaches the reference (the effect may be as large as the seed's);
    - reproduced, smaller than the reference: significant, but the CI's far bound is below |reference|;
    - contradicted: significant on the other side;
    - absent: not significant and the equivalence test (TOST; non-superiority for a directed claim) at the
      family's Holm level rejects an effect as large as the reference;
    - inconclusive: neither; not tested: no p-value.
    """
    if expected_sign not in (1, -1, 0):
        raise ValueError(f"expected_sign must be +1, -1 or 0 (undirected), got {expected_sign!r}")
    if p_adj is None or np.isnan(p_adj):
        return "not tested"
    side = decided_side(effect, effect_lo, effect_hi, p_adj, alpha)
    if side:
        if expected_sign not in (0, side):
            return "contradicted"
        far = effect_hi if side > 0 else -effect_lo
        if not np.isnan(reference) and not np.isnan(far) and far < abs(reference):
            return "reproduced, smaller than the reference"
        return "reproduced"
    if p_tost_adj is not None and not np.isnan(p_tost_adj) and p_tost_adj < alpha:
        return "absent"
    return "inconclusive"


def control_verdict(effect: float, effect_lo: float, effect_hi: float, p_adj: float, p_tost_adj: float,
                    alpha: float = 0.05) -> str:
    """A negative control (expected effect 0): equivalent to 0 within its margin, or a failed control."""
    base = verdict(effect, effect_lo, effect_hi, p_adj, p_tost_adj, 0, np.nan, alpha)
    return {"reproduced": "control failed", "absent": "null, as expected"}.get(base, base)

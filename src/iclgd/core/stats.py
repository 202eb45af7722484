"""Significance tests for paired ICL-vs-GD comparisons and the claims table built from them.

Both methods are scored on the *same* test examples (and often the same demonstration seeds), so
every comparison here is paired: treating the two accuracy estimates as independent would throw
away the correlation between them and misstate the uncertainty. Each test returns a plain dict
with the shared keys ``effect``, ``effect_lo``, ``effect_hi`` and ``p`` so rows from different
tests stack into one frame that `iclgd.core.claims` turns into Holm-adjusted verdicts.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.contingency_tables import mcnemar as _sm_mcnemar
from statsmodels.stats.multitest import multipletests

#: Below this many discordant pairs the chi-square approximation is poor, so McNemar goes exact.
EXACT_BELOW = 25

VERDICTS = ("reproduced", "contradicted", "absent at adequate power", "underpowered", "not tested")


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


def wilcoxon(x: Any, y: Any, n_boot: int, seed: int, ci: float) -> dict[str, Any]:
    """Wilcoxon signed-rank test of a paired continuous metric (e.g. per-example label log-prob).

    Two-sided, ``zero_method="wilcox"``: zero differences are dropped before ranking, as they say
    nothing about the direction. Pairs with a NaN on either side are dropped and counted in
    ``n_dropped``. If every difference is zero there is no evidence of a shift: p = 1 (scipy would
    fail). ``effect`` is the mean difference x - y with a bootstrap CI; the median is reported too
    because the signed-rank test is about location, not the mean.
    """
    u, v = _paired(x, y, float)
    keep = ~(np.isnan(u) | np.isnan(v))
    diff = u[keep] - v[keep]
    if len(diff) == 0:
        raise ValueError(f"wilcoxon: no pair without NaN among {len(u)}")
    if np.all(diff == 0):
        statistic, p = 0.0, 1.0
    else:
        res = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
        statistic, p = float(res.statistic), float(res.pvalue)
    effect, lo, hi = bootstrap_ci(diff, n_boot, ci, seed)
    return {"test": "wilcoxon", "n": len(diff), "n_dropped": int((~keep).sum()), "statistic": statistic, "p": p,
            "effect": effect, "effect_lo": lo, "effect_hi": hi, "median_diff": float(np.median(diff))}


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


def _require(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in frame (has {list(frame.columns)})")


def _is_binary(values: pd.Series) -> bool:
    return bool(values.isin([0, 1]).all())


def _indicator(values: pd.Series, name: str) -> pd.Series:
    """Treatment as 0/1 floats; anything else would make the coefficient's meaning ambiguous."""
    if values.dtype == bool or (pd.api.types.is_numeric_dtype(values) and _is_binary(values)):
        out = values.astype(float)
    else:
        raise ValueError(f"treatment column {name!r} must be bool or 0/1, e.g. (frame.method == 'finetune')")
    if out.nunique() < 2:
        raise ValueError(f"treatment column {name!r} takes a single value: the effect is not identifiable")
    return out


def gee_effect(frame: pd.DataFrame, outcome: str, treatment: str, groups: str,
               covariates: Sequence[str] = ()) -> dict[str, Any]:
    """Treatment effect with cluster-robust (sandwich) SEs from a GEE with exchangeable correlation.

    Records repeat the same test example across seeds (and the same seed across examples), so rows
    are not independent; clustering on ``groups`` (seed or uid) accounts for that. A 0/1 outcome
    gets a Binomial/logit model (``effect`` is a log-odds ratio), anything else a Gaussian one
    (``effect`` is a mean difference). ``covariates`` enter as categorical fixed effects.
    Rows with missing values in the used columns are dropped.

    With a single cluster the robust SE is undefined, so the model is refitted as a GLM assuming
    independent rows (model-based SEs, far too optimistic when rows are correlated) and the result
    carries ``n_groups == 1`` and ``fallback == "glm-independence"``. Invalid input raises ValueError.
    """
    columns = [outcome, treatment, groups, *covariates]
    _require(frame, columns)
    data = frame[columns].dropna()
    if len(data) == 0:
        raise ValueError("gee_effect: no rows left after dropping missing values")
    # Neutral column names keep the formula immune to spaces and keywords in the caller's names.
    try:
        y = data[outcome].astype(float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"outcome column {outcome!r} must be numeric or bool: {err}") from None
    safe = pd.DataFrame({"y": y, "t": _indicator(data[treatment], treatment),
                         "g": pd.factorize(data[groups])[0]})
    for i, cov in enumerate(covariates):
        safe[f"c{i}"] = data[cov].to_numpy()
    binary = _is_binary(safe["y"])
    if safe["y"].nunique() < 2:
        raise ValueError(f"outcome {outcome!r} is constant: nothing to explain")
    family = sm.families.Binomial() if binary else sm.families.Gaussian()
    formula = "y ~ t" + "".join(f" + C(c{i})" for i in range(len(covariates)) if safe[f"c{i}"].nunique() > 1)
    n_groups = int(safe["g"].nunique())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; failures surface as exceptions below
            if n_groups > 1:
                fit = smf.gee(formula, "g", safe, family=family, cov_struct=sm.cov_struct.Exchangeable()).fit()
            else:
                fit = smf.glm(formula, safe, family=family).fit()
    except Exception as err:  # statsmodels raises many types (LinAlgError, PerfectSeparation...)
        raise ValueError(f"gee_effect: model {formula!r} could not be fitted: {err}") from err
    lo, hi = fit.conf_int().loc["t"]
    return {"test": "gee", "family": "binomial" if binary else "gaussian", "effect": float(fit.params["t"]),
            "se": float(fit.bse["t"]), "z": float(fit.tvalues["t"]), "p": float(fit.pvalues["t"]),
            "effect_lo": float(lo), "effect_hi": float(hi), "n_groups": n_groups, "n_obs": int(fit.nobs),
            "fallback": None if n_groups > 1 else "glm-independence"}


def interaction_anova(frame: pd.DataFrame, outcome: str, factors: Sequence[str],
                      method_col: str = "method") -> pd.DataFrame:
    """Type-II ANOVA of ``outcome ~ C(method) * (C(f1) + C(f2) + ...)`` fitted by OLS.

    This makes "ICL vs GD behave inconsistently across datasets, models and N" testable: a small
    p for ``method:f`` means the method gap changes with f. A 0/1 outcome is treated as a linear
    probability model. Factors with a single level cannot vary and are dropped; their names are in
    ``result.attrs["dropped"]`` and the fitted formula in ``result.attrs["formula"]``. Terms are
    reported with the caller's column names (``method``, ``dataset``, ``method:dataset``, ...).
    """
    _require(frame, [outcome, method_col, *factors])
    data = frame[[outcome, method_col, *factors]].dropna()
    if data[method_col].nunique() < 2:
        raise ValueError(f"method column {method_col!r} needs two levels, has {data[method_col].unique().tolist()}")
    kept = [f for f in factors if data[f].nunique() > 1]
    dropped = [f for f in factors if f not in kept]
    safe = pd.DataFrame({"y": data[outcome].astype(float).to_numpy(), "m": data[method_col].to_numpy()})
    names = {"C(m)": method_col}
    for i, f in enumerate(kept):
        safe[f"f{i}"] = data[f].to_numpy()
        names[f"C(f{i})"] = f
        names[f"C(m):C(f{i})"] = f"{method_col}:{f}"
    rhs = "C(m)" + (" * (" + " + ".join(f"C(f{i})" for i in range(len(kept))) + ")" if kept else "")
    try:
        table = anova_lm(smf.ols(f"y ~ {rhs}", safe).fit(), typ=2)
    except Exception as err:
        raise ValueError(f"interaction_anova: could not fit y ~ {rhs}: {err}") from err
    out = pd.DataFrame({"term": [names.get(t, t) for t in table.index], "df": table["df"].to_numpy(),
                        "sum_sq": table["sum_sq"].to_numpy(), "F": table["F"].to_numpy(),
                        "p": table["PR(>F)"].to_numpy()})
    formula = f"{outcome} ~ C({method_col})" + (" * (" + " + ".join(f"C({f})" for f in kept) + ")" if kept else "")
    out.attrs |= {"dropped": dropped, "formula": formula}
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


def verdict(effect: float, effect_lo: float, effect_hi: float, p_adj: float, expected_sign: int,
            mde: float = np.nan, reference: float = np.nan, alpha: float = 0.05) -> str:
    """Four-way claim status: what a decided test says, and what an undecided one means given its power.

    - reproduced: decided on the claimed side (``expected_sign`` 0: an undirected claim, either side);
    - contradicted: decided on the other side;
    - absent at adequate power: not decided although the test's minimum detectable effect ``mde`` is at
      most the reference effect (the seed's): evidence *against* an effect of the seed's size;
    - underpowered: not decided and ``mde`` above the reference (or either unknown): the run could not tell;
    - not tested: no p-value (the test could not be run).
    """
    if expected_sign not in (1, -1, 0):
        raise ValueError(f"expected_sign must be +1, -1 or 0 (undirected), got {expected_sign!r}")
    if p_adj is None or np.isnan(p_adj):
        return "not tested"
    side = decided_side(effect, effect_lo, effect_hi, p_adj, alpha)
    if side:
        return "reproduced" if expected_sign in (0, side) else "contradicted"
    if np.isnan(mde) or np.isnan(reference) or mde > abs(reference):
        return "underpowered"
    return "absent at adequate power"

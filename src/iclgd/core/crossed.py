"""Inference for crossed designs: demonstration sets x test examples.

A claim about ICL is about demonstration *sets* drawn from a pool and test *examples* drawn from a test
pool, and every set meets every example: both are random factors, crossed. A mean over such a grid has
the variance sigma_set^2 / S + sigma_example^2 / E + sigma_residual^2 / (S E); a test over the S set means
misses the example term, one over examples misses the set term. Here the variance of a mean of setting
means (each setting = model, dataset, k, ...; settings weigh equally) is the two-way cluster-robust one of
Cameron, Gelbach and Miller (2011): V = V_set + V_example - V_set&example, each with an n / (n - 1)
small-sample factor (n: clusters per setting), and the t reference has Satterthwaite degrees of freedom
from the three terms (few sets make a normal reference anti-conservative). A level whose variance component comes out negative
(V_set <= V_set&example) is dropped, as in the classical quasi-F practice, and the test runs on the other
level alone. Calibrated by simulation in tests/core/test_calibration.py (rejection rate under the null
within Monte Carlo error of alpha for set-dominated, example-dominated, mixed and 0/1 data; with no
clustering at all the test is conservative).

Clusters are labels, so the same example under two models or two values of k is ONE example cluster and
the same demonstration set under two models is one set cluster: nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from iclgd.core.stats import t_interval, t_power


@dataclass(frozen=True)
class Parts:
    """Variance of the estimate split by level: the planner rescales each part with its own N."""

    set: float  # the demonstration-set component (V_set - V_both), >= 0 when kept
    example: float  # the test-example component (V_example - V_both)
    residual: float  # V_both: what varies within a (set, example) cell
    df_set: float  # degrees of freedom of each cluster sum: clusters less the setting means they absorb
    df_example: float
    df_both: float

    def variance(self, set_scale: float = 1.0, example_scale: float = 1.0) -> tuple[float, float]:
        """(variance, Satterthwaite df) with set and example counts multiplied by these scales."""
        s = self.set / set_scale if self.set > 0 else 0.0
        e = self.example / example_scale if self.example > 0 else 0.0
        r = self.residual / (set_scale * example_scale)
        ds, de = max(self.df_set * set_scale, 1), max(self.df_example * example_scale, 1)
        db = max(self.df_both * set_scale * example_scale, 1)
        if s > 0 and e > 0:
            v_set, v_ex = s + r, e + r
            var = v_set + v_ex - r
            return var, var**2 / (v_set**2 / ds + v_ex**2 / de + r**2 / db)
        if s > 0:
            return s + r, ds
        if e > 0:
            return e + r, de
        return r, db


def _codes(values: Any) -> np.ndarray:
    return np.unique(np.asarray(values).astype(str), return_inverse=True)[1].ravel()


def _clustered(psi: np.ndarray, codes: np.ndarray, setting: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Sum over clusters of the outer products of the clusters' summed influences, with the small-sample
    factor n / (n - 1), n = clusters per setting: each setting mean absorbs one cluster's worth of variation
    (G / (G - 1) over all G clusters would leave the pooled test anti-conservative: 0.078 at nominal 0.05 in
    the calibration). Returns (matrix, clusters G, degrees of freedom G (n - 1) / n)."""
    g = int(codes.max()) + 1
    sums = np.zeros((g, psi.shape[1]))
    np.add.at(sums, codes, psi)
    per_setting = np.mean([len(np.unique(codes[setting == a])) for a in np.unique(setting)])
    if per_setting < 2:
        return sums.T @ sums * np.nan, g, np.nan
    return sums.T @ sums * per_setting / (per_setting - 1), g, g * (per_setting - 1) / per_setting


def influence(values: Any, settings: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(setting means, per-observation influence on each setting mean (n x M), setting names)."""
    y = np.asarray(values, dtype=float)
    names, idx = np.unique(np.asarray(settings).astype(str), return_inverse=True)
    idx = idx.ravel()
    counts = np.bincount(idx, minlength=len(names))
    means = np.bincount(idx, weights=y, minlength=len(names)) / counts
    psi = np.zeros((len(y), len(names)))
    psi[np.arange(len(y)), idx] = (y - means[idx]) / counts[idx]
    return means, psi, list(names)


def covariance(values: Any, sets: Any, examples: Any, settings: Any = None) -> dict[str, Any]:
    """Setting means and their three two-way cluster-robust covariance parts (set, example, both)."""
    y = np.asarray(values, dtype=float)
    if len(y) == 0 or np.isnan(y).any():
        raise ValueError(f"crossed.covariance needs finite values, got {len(y)} with NaN: {np.isnan(y).sum()}")
    settings = np.zeros(len(y), dtype=int) if settings is None else settings
    means, psi, names = influence(y, settings)
    setting = _codes(settings)
    s_codes, e_codes = _codes(sets), _codes(examples)
    both = _codes(np.char.add(np.char.add(s_codes.astype(str), "|"), e_codes.astype(str)))
    v_set, g_set, df_set = _clustered(psi, s_codes, setting)
    v_ex, g_ex, df_ex = _clustered(psi, e_codes, setting)
    v_both, g_both, df_both = _clustered(psi, both, setting)
    return {"means": means, "names": names, "v_set": v_set, "v_example": v_ex, "v_both": v_both,
            "g_set": g_set, "g_example": g_ex, "g_both": g_both, "df_set": df_set, "df_example": df_ex,
            "df_both": df_both}


def contrast_parts(cov: dict[str, Any], weights: np.ndarray) -> Parts:
    """The variance parts of a linear combination w' means (e.g. the average of the setting means)."""
    quad = lambda m: float(weights @ m @ weights)  # noqa: E731
    v_set, v_ex, v_both = quad(cov["v_set"]), quad(cov["v_example"]), quad(cov["v_both"])
    return Parts(set=v_set - v_both, example=v_ex - v_both, residual=v_both, df_set=cov["df_set"],
                 df_example=cov["df_example"], df_both=cov["df_both"])


def mean_test(values: Any, sets: Any, examples: Any, settings: Any = None, alpha: float = 0.05) -> dict[str, Any]:
    """Two-sided t test of the average of setting means = 0, with its (1 - alpha) and (1 - 2 alpha) CIs.

    `settings` (None: one setting) weigh equally, so a setting with more answers does not dominate."""
    cov = covariance(values, sets, examples, settings)
    m = len(cov["means"])
    sizes = {"n_sets": cov["g_set"], "n_examples": cov["g_example"], "n_settings": m, "n_obs": len(np.asarray(values))}
    if np.isnan(cov["df_set"]) or np.isnan(cov["df_example"]):  # one set (or example) per setting: no replication
        nan = float("nan")
        return {"test": "crossed-t", "effect": float(cov["means"].mean()), "se": nan, "df": nan, "p": nan,
                "effect_lo": nan, "effect_hi": nan, "tost_lo": nan, "tost_hi": nan, "parts": None} | sizes
    weights = np.full(m, 1.0 / m)
    parts = contrast_parts(cov, weights)
    estimate = float(weights @ cov["means"])
    return t_summary(estimate, parts, alpha) | sizes


def t_summary(estimate: float, parts: Parts, alpha: float) -> dict[str, Any]:
    """Estimate, SE, df, two-sided p, the 95 % (1 - alpha) CI and the (1 - 2 alpha) CI of the TOST."""
    var, df = parts.variance()
    return {"test": "crossed-t", "parts": parts} | t_interval(estimate, np.sqrt(var) if var > 0 else 0.0, df, alpha)


def heterogeneity_test(values: Any, sets: Any, examples: Any, settings: Any, n_draws: int = 2000,
                       seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Do the setting means differ? Welch's heteroscedastic one-way F over the settings, each mean with
    its own crossed variance and Satterthwaite df (a cluster-robust Wald test with a handful of sets per
    setting estimates an M x M covariance from too few clusters and rejects far too often). Settings that
    share examples or sets are positively correlated, which makes Welch's test conservative, never liberal.
    Effect: the SD of the setting means, with a parametric-bootstrap percentile interval (draws from
    N(means, diag(V))); biased upward near zero, it makes "absent" (equivalence) harder to show."""
    y, labels = np.asarray(values, dtype=float), np.asarray(settings).astype(str)
    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError("heterogeneity_test needs at least two settings")
    s_arr, e_arr = np.asarray(sets), np.asarray(examples)
    per = [mean_test(y[labels == n], s_arr[labels == n], e_arr[labels == n], alpha=alpha) for n in names]
    if any(t["parts"] is None for t in per):
        nan = float("nan")
        return {"test": "welch-F", "effect": nan, "effect_lo": nan, "effect_hi": nan, "tost_lo": nan,
                "tost_hi": nan, "p": nan, "n_settings": len(names), "n_sets": nan, "n_examples": nan}
    result = {"means": np.array([t["effect"] for t in per]), "parts": [t["parts"] for t in per],
              "n_sets": _codes(sets).max() + 1, "n_examples": _codes(examples).max() + 1, "n_settings": len(names)}
    f, df1, df2 = welch(result["means"], result["parts"])
    var = np.array([pt.variance()[0] for pt in result["parts"]])
    draws = np.random.default_rng(seed).normal(result["means"], np.sqrt(var), size=(n_draws, len(names)))
    spread = draws.std(axis=1)
    lo, hi = np.quantile(spread, [alpha / 2, 1 - alpha / 2])
    lo2, hi2 = np.quantile(spread, [alpha, 1 - alpha])
    p = float(stats.f.sf(f, df1, df2)) if np.isfinite(f) else float("nan")
    return result | {"test": "welch-F", "effect": float(result["means"].std()), "effect_lo": float(lo),
                     "effect_hi": float(hi), "tost_lo": float(lo2), "tost_hi": float(hi2), "p": p, "F": f,
                     "df_num": df1, "df_denom": df2, "spread_draws": spread, "n_obs": len(y)}


def welch(means: np.ndarray, parts: list[Parts], set_scale: float = 1.0) -> tuple[float, float, float]:
    """Welch's F (and df1, df2) for means with variances and dfs from their crossed `parts`."""
    var_df = [pt.variance(set_scale) for pt in parts]
    v, nu = np.array([a for a, _ in var_df]), np.array([b for _, b in var_df])
    if not (v > 0).all():
        return float("nan"), float(len(means) - 1), float("nan")
    w = 1 / v
    k, total = len(means), w.sum()
    centre = (w * means).sum() / total
    a = ((w * (means - centre) ** 2).sum()) / (k - 1)
    lam = ((1 - w / total) ** 2 / nu).sum()
    b = 1 + 2 * (k - 2) / (k**2 - 1) * lam
    return float(a / b), float(k - 1), float((k**2 - 1) / (3 * lam))


def power(effect: float, parts: Parts, alpha: float, set_scale: float = 1.0, example_scale: float = 1.0) -> float:
    """Power of the two-sided crossed t test at `alpha` for a true mean `effect` (noncentral t), with the
    fitted variance parts and set / example counts scaled: the test that is run, not a stand-in."""
    var, df = parts.variance(set_scale, example_scale)
    if not var > 0:
        return float("nan")
    return t_power(abs(effect) / np.sqrt(var), df, alpha)


def f_power(spread: float, result: dict[str, Any], alpha: float, set_scale: float = 1.0) -> float:
    """Power of Welch's F at `alpha` when the setting means have SD `spread` in the observed pattern:
    noncentral F with noncentrality sum_a w_a (mu_a - weighted mean)^2 (the usual approximation)."""
    means, parts = result["means"], result["parts"]
    centred = means - means.mean()
    if not centred.std() > 0:
        return float("nan")
    pattern = centred / centred.std() * spread
    var_df = [pt.variance(set_scale) for pt in parts]
    w = 1 / np.array([a for a, _ in var_df])
    nc = float((w * (pattern - (w * pattern).sum() / w.sum()) ** 2).sum())
    _, df1, df2 = welch(pattern, parts, set_scale)
    return float(stats.ncf.sf(stats.f.ppf(1 - alpha, df1, df2), df1, df2, nc))


# ------------------------------------------------------- claims rows over prompt-set records


def design_ids(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The crossed design's labels: a demonstration set is (dataset, k, seed), shared by the models and GD
    variants that use it; a test example is (dataset, uid), shared across models, k and variants."""
    return {"sets": frame["dataset"] + "|" + frame["k"].astype(str) + "|" + frame["seed"].astype(str),
            "examples": frame["dataset"] + "|" + frame["uid"].astype(str)}


def setting_labels(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    """One label per setting: the row's values of `keys`, joined."""
    return frame[keys].astype(str).agg("|".join, axis=1)


def sets_per(frame: pd.DataFrame, settings: pd.Series) -> float:
    """Demonstration sets per setting (averaged): the unit the planner scales (`icl.demo_seeds`)."""
    return float(frame.groupby(settings.to_numpy())["seed"].nunique().mean())


def crossed_row(frame: pd.DataFrame, value: pd.Series, settings: pd.Series, alpha: float) -> dict[str, Any]:
    """The crossed t test of the average setting mean of `value`, as a claims row (with its power plan)."""
    test = mean_test(value.to_numpy(), **design_ids(frame), settings=settings.to_numpy(), alpha=alpha)
    sets_per_setting = sets_per(frame, settings)
    parts = test.pop("parts")
    plan = {"test": "crossed-t", "parts": parts, "n": float(sets_per_setting), "se": test["se"], "df": test["df"]}
    return test | {"n": int(round(sets_per_setting)), "unit": "sets x examples", "plan": plan}

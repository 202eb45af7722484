"""Power of the claims' tests: the minimum detectable effect (MDE) at the run's N, and the N a target needs.

A non-significant test means two different things depending on its power: "the effect is not there" when
the test could have seen an effect of the size that matters, "we cannot tell" when it could not. Every
claim row therefore gets, for the test it actually uses, the smallest effect it detects with 80 % power at
its own Holm level, and the N at which it would detect the reference effect (the seed paper's, where the
seed quantifies it). Where statsmodels has the analytic answer it is used; the one-sample Wilcoxon over
random contexts or examples has none, so its power is simulated from a smoothed bootstrap of the
observed differences, recentred on the effect under test.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
from scipy import stats
from statsmodels.stats.power import FTestPowerF2, TTestPower

POWER = 0.8
#: Largest N the search for "N needed" considers; beyond it the answer is inf (reported as such).
N_MAX = 100_000
#: ... for simulated tests (draws take n_sim x n memory) and the exact binomial (a linear scan of n).
SIM_N_MAX = 10_000


def holm_levels(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """The level Holm compares each row's raw p with: alpha / (m - rank + 1), ranks by ascending p.

    This is the level a row must clear to be rejected (given the rows before it were), so it is the
    level its power is computed at. NaN p-values (untested rows) get NaN and do not count in m.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    for rank, i in enumerate(order):
        out[i] = alpha / (len(order) - rank)
    return out


# --------------------------------------------------------------------------- analytic: t and F tests


def t_mde(sd: float, n: int, alpha: float, power: float = POWER) -> float:
    """MDE (in the data's units) of a two-sided one-sample / paired t test on n units with this sd."""
    if n < 2 or not sd > 0:
        return math.nan
    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
    return float(np.squeeze(d)) * sd


def t_n(effect: float, sd: float, alpha: float, power: float = POWER) -> float:
    """Units a two-sided one-sample t test needs to detect `effect` with `power` (ceil; inf past N_MAX)."""
    if not sd > 0 or not abs(effect) > 0:
        return math.nan
    d = abs(effect) / sd
    if TTestPower().power(effect_size=d, nobs=N_MAX, alpha=alpha) < power:
        return math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n = TTestPower().solve_power(effect_size=d, nobs=None, alpha=alpha, power=power, alternative="two-sided")
    return float(max(2, math.ceil(float(np.squeeze(n)) - 1e-6)))  # 20.0000001 is 20, not 21


def f2_mde(df_num: int, df_denom: int, alpha: float, power: float = POWER) -> float:
    """MDE as Cohen's f^2 of an F test (e.g. an ANOVA interaction term) with these degrees of freedom."""
    if df_num < 1 or df_denom < 1:
        return math.nan
    f2 = FTestPowerF2().solve_power(effect_size=None, df_num=df_num, df_denom=df_denom, alpha=alpha, power=power)
    return float(np.squeeze(f2))


def f2_n(f2: float, df_num: int, n_params: int, alpha: float, power: float = POWER) -> float:
    """Observations an F test needs to detect Cohen's f^2 (df_denom = N - n_params)."""
    if not f2 > 0:
        return math.nan
    power_at = lambda n: FTestPowerF2().power(effect_size=f2, df_num=df_num, df_denom=n - n_params, alpha=alpha)  # noqa: E731
    return float(smallest_n(lambda n: power_at(n) >= power, start=n_params + 2))


# --------------------------------------------------------------------------- exact: one-sided binomial


def binom_critical(n: int, p0: float, alpha: float) -> int:
    """Smallest count c with P(X >= c | n, p0) <= alpha (n + 1 when no count is significant)."""
    counts = np.arange(n + 2)
    ok = stats.binom.sf(counts - 1, n, p0) <= alpha
    return int(counts[np.argmax(ok)]) if ok.any() else n + 1


def binom_power(n: int, p0: float, p1: float, alpha: float) -> float:
    """Power of the one-sided exact binomial test of p > p0 when the true rate is p1."""
    c = binom_critical(n, p0, alpha)
    return 0.0 if c > n else float(stats.binom.sf(c - 1, n, p1))


def binom_mde(n: int, p0: float, alpha: float, power: float = POWER) -> float:
    """Smallest p1 - p0 the one-sided exact binomial test detects with `power` (inf: none can)."""
    if n < 1 or binom_power(n, p0, 1.0, alpha) < power:
        return math.inf
    lo, hi = p0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if binom_power(n, p0, mid, alpha) >= power else (mid, hi)
    return hi - p0


def binom_n(p0: float, effect: float, alpha: float, power: float = POWER) -> float:
    """Smallest n at which the one-sided exact binomial test detects p0 + effect with `power`."""
    p1 = p0 + effect
    if not effect > 0 or p1 > 1:
        return math.nan
    return float(smallest_n(lambda n: binom_power(n, p0, p1, alpha) >= power, start=1, monotone=False,
                            n_max=SIM_N_MAX))  # the zig-zag needs a linear scan: quadratic cost, so the same cap


# --------------------------------------------------------------------------- simulated: one-sample Wilcoxon


def smoothed_resamples(diffs: np.ndarray, n: int, n_sim: int, seed: int) -> np.ndarray:
    """(n_sim, n) draws from the observed differences' distribution, centred at 0.

    A smoothed bootstrap (resample + Gaussian kernel noise at Silverman's bandwidth, rescaled to keep the
    variance) instead of a plain one: plain resamples of ten values are full of ties, which would switch
    scipy's Wilcoxon from the exact test the real data get to the normal approximation.
    """
    x = np.asarray(diffs, dtype=float)
    x = x[~np.isnan(x)] - np.nanmean(x)
    sd = x.std(ddof=1) if len(x) > 1 else 0.0
    rng = np.random.default_rng(seed)
    draws = rng.choice(x, size=(n_sim, n), replace=True)
    if sd > 0:
        iqr = np.subtract(*np.percentile(x, [75, 25]))
        h = 0.9 * min(sd, iqr / 1.34 if iqr > 0 else sd) * len(x) ** -0.2
        draws = (draws + h * rng.standard_normal(draws.shape)) / math.sqrt(1 + h**2 / sd**2)
    return draws


def wilcoxon_power(diffs: np.ndarray, shift: float, n: int, alpha: float, n_sim: int, seed: int) -> float:
    """Share of simulated runs of n units, differences shifted to mean `shift`, where the two-sided Wilcoxon
    rejects at `alpha` on the side of `shift` (common random numbers across shifts: same seed, same draws)."""
    draws = smoothed_resamples(diffs, n, n_sim, seed) + shift
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        p = stats.wilcoxon(draws, axis=1, zero_method="wilcox").pvalue
    right_side = np.sign(draws.mean(axis=1)) == np.sign(shift)
    return float(np.mean((np.nan_to_num(p, nan=1.0) < alpha) & right_side))


def wilcoxon_mde(diffs: np.ndarray, n: int, alpha: float, power: float = POWER, *, n_sim: int,
                 seed: int) -> float:
    """Smallest mean shift the Wilcoxon over n units detects with `power` (inf: unreachable at this n,
    e.g. n = 5 where the exact test's smallest two-sided p is 1/16)."""
    diffs = np.asarray(diffs, dtype=float)
    sd = np.nanstd(diffs, ddof=1) if np.sum(~np.isnan(diffs)) > 1 else 0.0
    if n < 1 or not sd > 0:
        return math.nan
    hi = 50 * sd  # the power curve is flat beyond a few sd: if it is below `power` here, it stays there
    if wilcoxon_power(diffs, hi, n, alpha, n_sim, seed) < power:
        return math.inf
    lo = 0.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if wilcoxon_power(diffs, mid, n, alpha, n_sim, seed) >= power else (mid, hi)
        if hi - lo < 1e-3 * sd:
            break
    return hi


def wilcoxon_n(diffs: np.ndarray, effect: float, alpha: float, power: float = POWER, *, n_sim: int,
               seed: int) -> float:
    """Units the Wilcoxon needs to detect a mean shift `effect` with `power` (simulated; nan when the observed
    differences do not vary: there is no distribution to simulate, and constant draws send scipy's Wilcoxon to
    a permutation test per row that made the claims rule take tens of minutes)."""
    diffs = np.asarray(diffs, dtype=float)
    if not abs(effect) > 0 or np.sum(~np.isnan(diffs)) < 2 or not np.nanstd(diffs) > 0:
        return math.nan
    return float(smallest_n(lambda n: wilcoxon_power(diffs, effect, n, alpha, n_sim, seed) >= power, start=2,
                            n_max=SIM_N_MAX))


# --------------------------------------------------------------------------- search


def smallest_n(ok: Callable[[int], bool], start: int = 1, monotone: bool = True, n_max: int = N_MAX) -> float:
    """Smallest n >= start with ok(n), by doubling then bisection (inf if none up to n_max).

    `monotone=False` (exact binomial power zig-zags in n) scans linearly from `start` up to the first
    doubling that succeeds, so an earlier n that already qualifies is not skipped.
    """
    prev, hi = start - 1, max(start, 1)
    while not ok(hi):
        if hi >= n_max:
            return math.inf
        prev, hi = hi, min(2 * hi, n_max)
    if not monotone:
        return float(next(n for n in range(start, hi + 1) if ok(n)))
    lo = prev  # not ok (or below start)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return float(hi)

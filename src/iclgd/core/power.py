"""Power of the claims' tests, for the test that is actually run, planned at the family's Bonferroni level.

Every claim row carries a `plan`: what its own test needs to predict its power at another effect size or
another N (the crossed t: the fitted set / example / residual variance parts; the t over contexts: the
observed SD; the exact McNemar: the discordant rate; Welch's F: each setting mean's variance parts).
From it: the minimum detectable effect (MDE) at the run's N, the N that detects the reference effect with
`power`, and the N that would *decide* an inconclusive row at the observed effect and variance (the test
at the observed effect, or the equivalence test if the observed effect lies inside the margin).

Power is planned at alpha / m (m = the tested rows of the family), not at a row's Holm rank: a rank-
dependent level would give the least significant rows the smallest MDE. tests/core/test_calibration.py
checks each prediction against the simulated rejection rate of the real test.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from scipy import stats

from iclgd.core import crossed
from iclgd.core.stats import t_power

POWER = 0.8
#: Largest N the searches consider; beyond it the answer is inf (reported as such).
N_MAX = 100_000


def family_level(alpha: float, m: int) -> float:
    """The level each of a family's m rows is planned at (Bonferroni: conservative, rank-free)."""
    return alpha / max(int(m), 1)


# --------------------------------------------------------------------------- exact McNemar, one-sided


def mcnemar_power(n: int, discordant: float, effect: float, alpha: float) -> float:
    """Exact unconditional power of the one-sided exact McNemar on n pairs: the discordant count is
    Binomial(n, discordant), and given it the count favouring a is Binomial(n_d, (1 + effect/discordant)/2).
    The discordant rate is raised to |effect| where it is smaller (no such effect fits otherwise)."""
    if n < 1 or not effect > 0:
        return 0.0 if n >= 1 else math.nan
    psi = min(max(discordant, effect), 1.0)
    n_d = np.arange(n + 1)
    weight = stats.binom.pmf(n_d, n, psi)
    # critical count per n_d: smallest c with P(X >= c | n_d, 1/2) <= alpha
    total = 0.0
    for d, w in zip(n_d, weight):
        if d == 0 or w < 1e-12:
            continue
        counts = np.arange(d + 1)
        ok = stats.binom.sf(counts - 1, d, 0.5) <= alpha
        if ok.any():
            total += w * float(stats.binom.sf(counts[np.argmax(ok)] - 1, d, (1 + effect / psi) / 2))
    return float(total)


# --------------------------------------------------------------------------- dispatch on the row's test


def power_at(plan: dict[str, Any], effect: float, alpha: float, scale: float = 1.0) -> float:
    """Power of the row's own test at a true `effect`, with its N multiplied by `scale`."""
    test = plan["test"]
    if test == "crossed-t":
        return crossed.power(effect, plan["parts"], alpha, set_scale=scale)
    if test == "t":
        n = plan["n"] * scale
        if not plan["sd"] > 0 or n < 2:
            return math.nan
        return t_power(abs(effect) / plan["sd"] * math.sqrt(n), n - 1, alpha)
    if test == "mcnemar-exact":
        return mcnemar_power(int(round(plan["n"] * scale)), plan["discordant"], abs(effect), alpha)
    if test == "welch-F":
        return crossed.f_power(abs(effect), plan["result"], alpha, set_scale=scale)
    raise ValueError(f"no power analysis for test {test!r}")


def mde(plan: dict[str, Any], alpha: float, power: float = POWER) -> float:
    """Smallest effect the row's test detects with `power` at its N (inf: none up to `plan['max_effect']`)."""
    hi = plan.get("max_effect", 1.0)
    at = lambda e: power_at(plan, e, alpha)  # noqa: E731
    if math.isnan(at(hi)):
        return math.nan
    if at(hi) < power:
        return math.inf
    lo = 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if at(mid) >= power else (mid, hi)
    return hi


def n_for(plan: dict[str, Any], effect: float, alpha: float, power: float = POWER) -> float:
    """Units (the plan's `n`: sets per setting, contexts, queries) that detect `effect` with `power`."""
    if not abs(effect) > 0 or np.isnan(effect):
        return math.nan
    n0 = plan["n"]
    ok = lambda n: power_at(plan, effect, alpha, n / n0) >= power  # noqa: E731
    return smallest_n(ok, start=2)


def equivalence_power(plan: dict[str, Any], effect: float, margin: float, alpha: float, scale: float) -> float:
    """Approximate power of the equivalence test when the true effect is `effect` (inside the margin):
    the near one-sided test, with the plan's SE shrunk as 1 / sqrt(scale) (t reference)."""
    se, df = plan.get("se", math.nan), plan.get("df", math.inf)
    if not se > 0 or not abs(effect) < abs(margin):
        return math.nan if not se > 0 else 0.0
    if plan["test"] == "crossed-t":
        var, df = plan["parts"].variance(set_scale=scale)
        se = math.sqrt(var)
    else:
        se, df = se / math.sqrt(scale), max(df, 1.0) * scale
    return float(stats.t.cdf((abs(margin) - abs(effect)) / se - stats.t.ppf(1 - alpha, df), df))


def n_to_decide(plan: dict[str, Any], effect: float, margin: float, alpha: float, power: float = POWER) -> float:
    """N at which an inconclusive row would be decided with `power` if the observed effect and variance
    held: by the test (a nonzero effect) or by the equivalence test (an effect inside the margin)."""
    n0, found = plan["n"], []
    if abs(effect) > 0 and not np.isnan(effect):
        found.append(n_for(plan, effect, alpha, power))
    if not np.isnan(margin) and abs(effect) < abs(margin) and plan["test"] != "welch-F":
        found.append(smallest_n(lambda n: equivalence_power(plan, effect, margin, alpha, n / n0) >= power, start=2))
    return float(min(found)) if found else math.nan


# --------------------------------------------------------------------------- search


def smallest_n(ok: Callable[[int], bool], start: int = 1, n_max: int = N_MAX) -> float:
    """Smallest n >= start with ok(n), by doubling then bisection (inf if none up to n_max); ok must be
    monotone in n (every power here is: exact McNemar power is averaged over the discordant count)."""
    prev, hi = start - 1, max(start, 1)
    while not ok(hi):
        if hi >= n_max:
            return math.inf
        prev, hi = hi, min(2 * hi, n_max)
    lo = prev
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return float(hi)

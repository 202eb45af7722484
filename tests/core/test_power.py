"""Power of the claims' tests, checked against statsmodels, exact hand computations and direct simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower

from iclgd.core import crossed, power


def test_family_level_is_bonferroni():
    assert power.family_level(0.05, 4) == pytest.approx(0.0125)
    assert power.family_level(0.05, 1) == pytest.approx(0.05)
    assert power.family_level(0.05, 0) == pytest.approx(0.05)  # an empty family does not divide by 0


# --------------------------------------------------------------------------- exact McNemar


def test_mcnemar_power_hand_computed_extremes():
    # every pair discordant and favouring a (discordant = effect = 1): n_d = n, the count is n for sure.
    # n = 5: P(Bin(5, 1/2) >= 5) = 1/32 <= 0.05 rejects -> power 1; n = 4: 1/16 > 0.05 never rejects -> 0
    assert power.mcnemar_power(5, 1.0, 1.0, 0.05) == pytest.approx(1.0)
    assert power.mcnemar_power(4, 1.0, 1.0, 0.05) == pytest.approx(0.0)
    # the discordant rate is raised to the effect where it is smaller: 0.2 -> 1.0
    assert power.mcnemar_power(5, 0.2, 1.0, 0.05) == pytest.approx(1.0)
    assert math.isnan(power.mcnemar_power(0, 0.3, 0.1, 0.05))


def test_mcnemar_power_matches_a_direct_simulation_of_the_exact_test():
    n, discordant, effect, alpha, sims = 40, 0.3, 0.15, 0.05, 4000
    rng = np.random.default_rng(0)
    # per pair: a-only with prob (d + e) / 2 = 0.225, b-only (d - e) / 2 = 0.075, concordant 0.7
    cells = rng.multinomial(n, [(discordant + effect) / 2, (discordant - effect) / 2, 1 - discordant], size=sims)
    a_only, n_d = cells[:, 0], cells[:, 0] + cells[:, 1]
    p = np.where(n_d > 0, stats.binom.sf(a_only - 1, n_d, 0.5), 1.0)  # exact one-sided McNemar
    simulated = float(np.mean(p <= alpha))
    assert power.mcnemar_power(n, discordant, effect, alpha) == pytest.approx(simulated, abs=0.03)
    assert 0.2 < simulated < 0.95  # a case where power is neither trivial 0 nor 1


def test_mcnemar_power_at_no_effect_is_bounded_by_alpha():
    assert power.mcnemar_power(40, 0.3, 0.0, 0.05) == 0.0
    tiny = power.mcnemar_power(40, 0.3, 1e-6, 0.05)
    assert 0.0 < tiny <= 0.05  # the exact test is conservative
    assert power.mcnemar_power(40, 0.3, 0.15, 0.05) > power.mcnemar_power(40, 0.3, 0.05, 0.05) > tiny


# --------------------------------------------------------------------------- dispatch


T_PLAN = {"test": "t", "n": 20, "sd": 0.3, "se": 0.3 / math.sqrt(20), "df": 19, "max_effect": 0.5}


def test_power_at_t_is_statsmodels_ttestpower():
    assert power.power_at(T_PLAN, 0.1, 0.0125) == pytest.approx(
        TTestPower().power(effect_size=0.1 / 0.3, nobs=20, alpha=0.0125))
    assert power.power_at(T_PLAN, -0.1, 0.0125) == pytest.approx(power.power_at(T_PLAN, 0.1, 0.0125))
    assert power.power_at(T_PLAN, 0.1, 0.05, scale=2.0) == pytest.approx(
        TTestPower().power(effect_size=0.1 / 0.3, nobs=40, alpha=0.05))
    assert math.isnan(power.power_at({**T_PLAN, "sd": 0.0}, 0.1, 0.05))


def test_power_at_dispatches_to_the_rows_own_test():
    parts = crossed.Parts(set=0.002, example=0.001, residual=0.0005, df_set=4, df_example=39, df_both=156)
    plan = {"test": "crossed-t", "parts": parts, "n": 5}
    assert power.power_at(plan, 0.1, 0.05, scale=2.0) == crossed.power(0.1, parts, 0.05, set_scale=2.0)
    mc = {"test": "mcnemar-exact", "n": 40, "discordant": 0.3}
    assert power.power_at(mc, -0.15, 0.05) == power.mcnemar_power(40, 0.3, 0.15, 0.05)
    assert power.power_at(mc, 0.15, 0.05, scale=1.5) == power.mcnemar_power(60, 0.3, 0.15, 0.05)
    with pytest.raises(ValueError, match="no power analysis"):
        power.power_at({"test": "wilcoxon"}, 0.1, 0.05)


def test_mde_has_exactly_the_requested_power():
    mde = power.mde(T_PLAN, 0.0125)
    assert 0 < mde < 1
    assert TTestPower().power(effect_size=mde / 0.3, nobs=20, alpha=0.0125) == pytest.approx(0.8, abs=1e-6)
    mde90 = power.mde(T_PLAN, 0.0125, power=0.9)
    assert mde90 > mde
    assert TTestPower().power(effect_size=mde90 / 0.3, nobs=20, alpha=0.0125) == pytest.approx(0.9, abs=1e-6)
    # no effect up to max_effect reaches the power: inf; an undefined power: NaN
    assert power.mde({**T_PLAN, "max_effect": 0.01}, 0.0125) == math.inf
    assert math.isnan(power.mde({**T_PLAN, "sd": 0.0}, 0.0125))


def test_n_for_is_the_smallest_n_with_the_power():
    n = power.n_for(T_PLAN, 0.1, 0.05)
    assert n == int(n) and n > 20
    assert TTestPower().power(effect_size=0.1 / 0.3, nobs=n, alpha=0.05) >= 0.8
    assert TTestPower().power(effect_size=0.1 / 0.3, nobs=n - 1, alpha=0.05) < 0.8
    # the inverse of the MDE: the N that detects the MDE is the N it came from
    assert power.n_for(T_PLAN, power.mde(T_PLAN, 0.0125) * (1 + 1e-9), 0.0125) == 20
    assert math.isnan(power.n_for(T_PLAN, 0.0, 0.05)) and math.isnan(power.n_for(T_PLAN, np.nan, 0.05))


def _equivalence_route(sd, n0, effect, margin, alpha, target=0.8):
    """Linear scan: the smallest n whose one-sided test at the near margin has `target` power, with the t
    plan's SE sd / sqrt(n) and df (n0 - 1) n / n0."""
    for n in range(2, 100_000):
        se, df = sd / math.sqrt(n), (n0 - 1) * n / n0
        if stats.t.cdf((margin - abs(effect)) / se - stats.t.ppf(1 - alpha, df), df) >= target:
            return n
    raise AssertionError("no n found")


def _test_route(sd, effect, alpha, target=0.8):
    n = 2
    while TTestPower().power(effect_size=abs(effect) / sd, nobs=n, alpha=alpha) < target:
        n += 1
    return n


def test_n_to_decide_takes_the_smaller_route():
    # a small effect well inside the margin: the equivalence test decides it long before the t test
    equiv, test = _equivalence_route(0.3, 20, 0.01, 0.4, 0.05), _test_route(0.3, 0.01, 0.05)
    assert equiv < test
    assert power.n_to_decide(T_PLAN, 0.01, 0.4, 0.05) == equiv
    # an effect just inside the margin: the t test decides it first
    equiv, test = _equivalence_route(0.3, 20, 0.35, 0.4, 0.05), _test_route(0.3, 0.35, 0.05)
    assert test < equiv
    assert power.n_to_decide(T_PLAN, 0.35, 0.4, 0.05) == test
    # outside the margin only the t test can decide it; no margin: the same
    assert power.n_to_decide(T_PLAN, 0.5, 0.4, 0.05) == _test_route(0.3, 0.5, 0.05)
    assert power.n_to_decide(T_PLAN, 0.5, np.nan, 0.05) == _test_route(0.3, 0.5, 0.05)
    # no effect and no margin: nothing can decide it
    assert math.isnan(power.n_to_decide(T_PLAN, 0.0, np.nan, 0.05))


def test_smallest_n_on_monotone_predicates():
    assert power.smallest_n(lambda n: n >= 37) == 37
    assert power.smallest_n(lambda n: n >= 1) == 1
    assert power.smallest_n(lambda n: True, start=2) == 2
    assert power.smallest_n(lambda n: n >= 1000, start=2) == 1000
    assert power.smallest_n(lambda n: False) == math.inf
    assert power.smallest_n(lambda n: n >= 300, n_max=256) == math.inf  # beyond the cap: out of reach
    assert power.smallest_n(lambda n: n >= 256, n_max=256) == 256


def test_mde_of_a_precise_crossed_row_is_finite():
    # se = sqrt(0.0009) = 0.03: an effect of 1 (the default max_effect) has power ~1, so the MDE is ~0.1
    # (scipy's nct.cdf is NaN far in the lower tail; a NaN power there made the MDE NaN)
    parts = crossed.Parts(set=0.0004, example=0.0004, residual=0.0001, df_set=4, df_example=39, df_both=156)
    assert crossed.power(1.0, parts, 0.05) == pytest.approx(1.0)
    mde = power.mde({"test": "crossed-t", "parts": parts, "n": 5}, 0.05)
    assert crossed.power(mde, parts, 0.05) == pytest.approx(0.8, abs=1e-6) and 0.05 < mde < 0.2


def test_mde_of_a_kossen_plan_has_the_requested_power():
    plan = {"test": "t", "n": 10, "sd": 1.0, "max_effect": 50.0}  # what kossen_tests builds
    mde = power.mde(plan, 0.05)
    assert TTestPower().power(effect_size=mde, nobs=10, alpha=0.05) == pytest.approx(0.8, abs=1e-6)  # mde ~ 1.0

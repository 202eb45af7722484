"""Power of the claims' tests, checked against statsmodels, exact hand computations and direct simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import FTestPowerF2, TTestPower

from iclgd.core import power


def test_holm_levels_rank_rows_by_p():
    # m = 3 tested rows: the smallest p faces alpha/3, the next alpha/2, the largest alpha; NaN is untested
    levels = power.holm_levels(np.array([0.3, 0.01, np.nan, 0.02]), 0.05)
    np.testing.assert_allclose(levels, [0.05, 0.05 / 3, np.nan, 0.025])


def test_t_mde_has_exactly_the_requested_power_in_statsmodels():
    mde = power.t_mde(sd=0.3, n=20, alpha=0.0125)
    assert TTestPower().power(effect_size=mde / 0.3, nobs=20, alpha=0.0125) == pytest.approx(0.8, abs=1e-6)
    n = power.t_n(effect=mde, sd=0.3, alpha=0.0125)
    assert n == 20  # the inverse: the N that detects the MDE is the N it came from
    assert TTestPower().power(effect_size=0.1 / 0.3, nobs=power.t_n(0.1, 0.3, 0.05), alpha=0.05) >= 0.8
    assert TTestPower().power(effect_size=0.1 / 0.3, nobs=power.t_n(0.1, 0.3, 0.05) - 1, alpha=0.05) < 0.8
    assert math.isnan(power.t_mde(sd=0.0, n=20, alpha=0.05))


def test_f2_mde_and_n_match_statsmodels():
    mde = power.f2_mde(df_num=3, df_denom=500, alpha=0.05 / 3)
    assert FTestPowerF2().power(effect_size=mde, df_num=3, df_denom=500, alpha=0.05 / 3) == pytest.approx(0.8, abs=1e-6)
    n = power.f2_n(0.02, df_num=3, n_params=20, alpha=0.05)
    assert FTestPowerF2().power(effect_size=0.02, df_num=3, df_denom=n - 20, alpha=0.05) >= 0.8
    assert FTestPowerF2().power(effect_size=0.02, df_num=3, df_denom=n - 21, alpha=0.05) < 0.8


def test_binomial_critical_value_and_power_by_hand():
    # n = 10, p0 = 0.5: P(X >= 9) = 11/1024 = 0.0107 <= 0.05 < P(X >= 8) = 56/1024 = 0.0547
    assert power.binom_critical(10, 0.5, 0.05) == 9
    # power at p1 = 0.9: P(X >= 9 | 0.9) = 10 * 0.9^9 * 0.1 + 0.9^10
    assert power.binom_power(10, 0.5, 0.9, 0.05) == pytest.approx(10 * 0.9**9 * 0.1 + 0.9**10)
    assert power.binom_critical(3, 0.5, 0.05) == 4 and power.binom_mde(3, 0.5, 0.05) == math.inf  # 1/8 > 0.05


def test_binomial_mde_is_the_smallest_effect_with_power():
    mde = power.binom_mde(24, 0.6, 0.0125)
    assert power.binom_power(24, 0.6, 0.6 + mde, 0.0125) >= 0.8
    assert power.binom_power(24, 0.6, 0.6 + mde - 1e-3, 0.0125) < 0.8
    n = power.binom_n(0.6, 0.25, 0.0125)
    assert power.binom_power(int(n), 0.6, 0.85, 0.0125) >= 0.8
    assert all(power.binom_power(m, 0.6, 0.85, 0.0125) < 0.8 for m in range(1, int(n)))  # none smaller
    assert math.isnan(power.binom_n(0.9, 0.2, 0.05))  # p1 > 1: no such effect


def test_wilcoxon_is_unreachable_where_the_exact_test_cannot_reject():
    # n = 5: the exact two-sided Wilcoxon's smallest p is 2/2^5 = 1/16 > 0.05, whatever the effect
    diffs = np.random.default_rng(0).normal(0.0, 1.0, 10)
    assert power.wilcoxon_mde(diffs, n=5, alpha=0.05, n_sim=200, seed=0) == math.inf
    assert power.wilcoxon_power(diffs, 100.0, n=6, alpha=0.05, n_sim=200, seed=0) == 1.0  # 2/2^6 = 0.031 < 0.05


def test_wilcoxon_power_matches_a_direct_simulation_of_normal_data():
    """Smoothed-bootstrap power from a large normal sample ~ power of Wilcoxon on fresh N(shift, 1) draws."""
    diffs = np.random.default_rng(1).normal(0.0, 1.0, 2000)
    rng = np.random.default_rng(2)
    direct = np.mean(stats.wilcoxon(rng.normal(0.5, 1.0, (4000, 20)), axis=1).pvalue < 0.05)
    simulated = power.wilcoxon_power(diffs, 0.5, n=20, alpha=0.05, n_sim=4000, seed=3)
    assert simulated == pytest.approx(direct, abs=0.04)  # two Monte Carlo errors of ~0.008 each, + smoothing


def test_wilcoxon_mde_follows_the_asymptotic_relative_efficiency():
    """For normal data the Wilcoxon needs pi/3 times the t test's N (ARE 3/pi): its MDE at n is the t test's
    at 3n/pi."""
    diffs = np.random.default_rng(4).normal(0.0, 1.0, 2000)
    mde = power.wilcoxon_mde(diffs, n=60, alpha=0.05, n_sim=2000, seed=0)
    assert mde == pytest.approx(power.t_mde(diffs.std(ddof=1), round(60 * 3 / np.pi), 0.05), rel=0.08)
    n = power.wilcoxon_n(diffs, mde, alpha=0.05, n_sim=2000, seed=0)
    assert abs(n - 60) <= 4  # the inverse search lands back near the n it came from


def test_smallest_n_searches_monotone_and_zigzag_conditions():
    assert power.smallest_n(lambda n: n >= 37) == 37
    assert power.smallest_n(lambda n: n >= 1) == 1
    assert power.smallest_n(lambda n: False) == math.inf
    assert power.smallest_n(lambda n: n >= 300, n_max=256) == math.inf  # beyond the cap: out of reach
    # a zig-zag condition true at 5 and from 9 on: the scan finds 5, a bisection from 8 would not
    assert power.smallest_n(lambda n: n == 5 or n >= 9, monotone=False) == 5


def test_wilcoxon_sizes_nothing_for_differences_that_do_not_vary():
    """Constant differences (a tiny random model's identical curves): no distribution to simulate, so no N
    and no MDE, at once instead of a permutation test per simulated row."""
    constant = np.full(6, 0.25)
    assert math.isnan(power.wilcoxon_n(constant, 0.1, 0.05, n_sim=200, seed=0))
    assert math.isnan(power.wilcoxon_mde(constant, 6, 0.05, n_sim=200, seed=0))

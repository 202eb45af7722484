"""The statistics core against hand-computed cases: McNemar (two-sided and the exact one-sided), the one-sample t,
the equivalence p, Holm, the bootstrap and the verdicts read from them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.stats import chi2

from iclgd.core import stats

#: (n_boot, seed, ci) of the config's `metrics` defaults, passed explicitly as the pipeline does.
BOOT = (2000, 0, 0.95)


def paired_outcomes(a_only: int, b_only: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Correct/incorrect arrays with the given 2x2 McNemar cell counts."""
    a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
    b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
    return np.array(a), np.array(b)


# --- McNemar -------------------------------------------------------------------------------------

def test_mcnemar_exact_hand_computed():
    # 1 only-a-right, 6 only-b-right, 10 concordant (5 both right, 5 both wrong), n = 17.
    # 7 discordant < 25 -> exact: p = 2 * P(Bin(7, 1/2) <= 1) = 2 * (C(7,0) + C(7,1)) / 2^7 = 2 * 8 / 128 = 0.125
    # acc(a) = (1 + 5) / 17, acc(b) = (6 + 5) / 17 -> effect = -5/17
    a, b = paired_outcomes(1, 6, 5, 5)
    res = stats.mcnemar(a, b, *BOOT)
    assert res["exact"] is True
    assert (res["n"], res["n_a_only"], res["n_b_only"]) == (17, 1, 6)
    assert res["p"] == pytest.approx(2 * (math.comb(7, 0) + math.comb(7, 1)) / 2**7) == pytest.approx(0.125)
    assert res["effect"] == pytest.approx(-5 / 17)
    assert res["effect_lo"] <= res["effect"] <= res["effect_hi"]
    assert res["effect_lo"] < 0  # the interval is not degenerate


def test_mcnemar_swapping_arguments_flips_effect_not_p():
    a, b = paired_outcomes(1, 6, 5, 5)
    forward, backward = stats.mcnemar(a, b, *BOOT), stats.mcnemar(b, a, *BOOT)
    assert backward["effect"] == pytest.approx(5 / 17)
    assert backward["p"] == pytest.approx(forward["p"])
    assert (backward["n_a_only"], backward["n_b_only"]) == (6, 1)


def test_mcnemar_chi_square_branch_matches_formula():
    # 20 only-a, 8 only-b: 28 discordant >= 25 -> chi-square with continuity correction
    # statistic = (|20 - 8| - 1)^2 / (20 + 8) = 121 / 28 = 4.3214...; p = chi2(1).sf(121/28) ~ 0.0376
    a, b = paired_outcomes(20, 8, 30, 12)
    res = stats.mcnemar(a, b, *BOOT)
    assert res["exact"] is False
    assert res["statistic"] == pytest.approx(121 / 28)
    assert res["p"] == pytest.approx(chi2.sf(121 / 28, df=1))
    assert res["p"] == pytest.approx(0.0376, abs=5e-4)
    assert res["effect"] == pytest.approx((20 - 8) / 70)


def test_mcnemar_switches_to_chi_square_at_25_discordant():
    # 24 discordant is still exact, 25 is not
    assert stats.mcnemar(*paired_outcomes(16, 8, 3, 3), *BOOT)["exact"] is True
    assert stats.mcnemar(*paired_outcomes(17, 8, 3, 3), *BOOT)["exact"] is False


def test_mcnemar_no_discordant_pairs_gives_p_one():
    a, b = paired_outcomes(0, 0, 4, 3)
    res = stats.mcnemar(a, b, *BOOT)
    assert res["p"] == 1.0
    assert res["effect"] == res["effect_lo"] == res["effect_hi"] == 0.0


def test_mcnemar_rejects_unequal_lengths():
    with pytest.raises(ValueError, match=r"5 and 4"):
        stats.mcnemar([True] * 5, [True] * 4, *BOOT)


# --- bootstrap -----------------------------------------------------------------------------------

def test_bootstrap_two_points_hand_computed():
    # values [0, 1]: a resample's mean is 0, 0.5 or 1 with prob 1/4, 1/2, 1/4; each tail holds 25% > 2.5%,
    # so the 95% percentile interval is exactly [0, 1] around the mean 0.5.
    assert stats.bootstrap_ci([0.0, 1.0], 2000, 0.95, 3) == pytest.approx((0.5, 0.0, 1.0))


def test_bootstrap_constant_sample_zero_width_and_seeded():
    assert stats.bootstrap_ci([2.0, 2.0, 2.0], 2000, 0.95, 0) == (2.0, 2.0, 2.0)
    assert stats.bootstrap_ci([3.0], 2000, 0.95, 0) == (3.0, 3.0, 3.0)
    with pytest.raises(ValueError):
        stats.bootstrap_ci([], 2000, 0.95, 0)
    values = np.random.default_rng(1).normal(size=50)
    first = stats.bootstrap_ci(values, 500, 0.95, 7)
    assert first == stats.bootstrap_ci(values, 500, 0.95, 7)
    assert first[1] < first[0] < first[2]
    assert first[0] == pytest.approx(values.mean())


# --- Holm ----------------------------------------------------------------------------------------

def test_holm_hand_computed_with_nan():
    # family size 3 (NaN not counted); sorted p 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04;
    # step-down monotonicity lifts 0.04 to 0.06 -> in input order [0.03, 0.06, 0.06, nan]
    out = stats.holm([0.01, 0.04, 0.03, np.nan])
    np.testing.assert_allclose(out[:3], [0.03, 0.06, 0.06])
    assert np.isnan(out[3])


def test_holm_caps_at_one_and_handles_all_nan():
    np.testing.assert_allclose(stats.holm([0.6, 0.7]), [1.0, 1.0])  # 0.6*2 = 1.2 -> 1
    assert np.isnan(stats.holm([np.nan, np.nan])).all()



# --- one-sample t over independent units ----------------------------------------------------------

def test_t_one_sample_hand_computed_and_drops_nan():
    # [1, 2, 3, 4, 10]: mean 4, squared deviations 9 + 4 + 1 + 0 + 36 = 50 -> sd = sqrt(50 / 4), se = sqrt(12.5 / 5)
    res = stats.t_one_sample([1, 2, 3, 4, 10, np.nan], alpha=0.05)
    se = math.sqrt(2.5)
    assert (res["test"], res["n"], res["df"]) == ("t", 5, 4.0)
    assert res["effect"] == pytest.approx(4.0)
    assert res["sd"] == pytest.approx(math.sqrt(12.5)) and res["se"] == pytest.approx(se)
    assert res["p"] == pytest.approx(sps.ttest_1samp([1, 2, 3, 4, 10], 0.0).pvalue)
    assert res["p"] == pytest.approx(2 * sps.t.sf(4 / se, 4))
    q975, q95 = 2.7764451051977987, 2.1318467863266495  # t_{0.975, 4}, t_{0.95, 4} (tables)
    assert (res["effect_lo"], res["effect_hi"]) == pytest.approx((4 - q975 * se, 4 + q975 * se))
    assert (res["tost_lo"], res["tost_hi"]) == pytest.approx((4 - q95 * se, 4 + q95 * se))


def test_t_one_sample_tost_interval_follows_alpha():
    # alpha = 0.1: the 90 % interval uses t_{0.95} and the TOST one t_{0.90}
    res = stats.t_one_sample([1, 2, 3, 4, 10], alpha=0.1)
    se = math.sqrt(2.5)
    assert res["effect_hi"] == pytest.approx(4 + sps.t.ppf(0.95, 4) * se)
    assert res["tost_hi"] == pytest.approx(4 + sps.t.ppf(0.90, 4) * se)


def test_t_one_sample_constant_and_too_small_samples():
    const = stats.t_one_sample([2.0, 2.0, 2.0])
    assert const["se"] == 0 and const["p"] == 0.0  # no spread, nonzero mean
    assert const["effect_lo"] == const["effect_hi"] == const["tost_lo"] == const["tost_hi"] == 2.0
    assert stats.t_one_sample([0.0, 0.0])["p"] == 1.0
    with pytest.raises(ValueError, match="at least two"):
        stats.t_one_sample([1.0, np.nan])


# --- one-sided exact McNemar -----------------------------------------------------------------------

def test_mcnemar_greater_hand_computed():
    # 6 a-only, 1 b-only, 3 both right, 2 both wrong (n = 12): p = P(Bin(7, 1/2) >= 6) = (C(7,6) + C(7,7)) / 2^7
    a, b = paired_outcomes(6, 1, 3, 2)
    res = stats.mcnemar_greater(a, b, alpha=0.05)
    assert (res["test"], res["n"], res["n_a_only"], res["n_b_only"]) == ("mcnemar-exact", 12, 6, 1)
    assert res["p"] == pytest.approx(8 / 128)
    assert res["effect"] == pytest.approx(5 / 12)
    # per-query differences: six +1, one -1, five 0 -> variance (7 - 12 (5/12)^2) / 11 = 59 / 132
    se = math.sqrt(59 / 132 / 12)
    assert res["se"] == pytest.approx(se)
    assert res["effect_lo"] == pytest.approx(5 / 12 - sps.t.ppf(0.975, 11) * se)
    assert res["tost_hi"] == pytest.approx(5 / 12 + sps.t.ppf(0.95, 11) * se)


def test_mcnemar_greater_is_one_sided():
    a, b = paired_outcomes(6, 1, 3, 2)
    back = stats.mcnemar_greater(b, a)
    assert back["p"] == pytest.approx(1 - 1 / 128)  # P(Bin(7, 1/2) >= 1)
    assert back["effect"] == pytest.approx(-5 / 12)
    none = stats.mcnemar_greater(*paired_outcomes(0, 0, 3, 2))
    assert none["p"] == 1.0 and none["effect"] == 0.0
    with pytest.raises(ValueError, match=r"3 and 2"):
        stats.mcnemar_greater([True] * 3, [True] * 2)


# --- equivalence p ---------------------------------------------------------------------------------

def test_tost_p_directed_uses_only_the_claimed_side():
    # non-superiority for a positive claim: H0 effect >= 0.3; t = (0.1 - 0.3) / 0.05 = -4
    assert stats.tost_p(0.1, 0.05, 10, 0.3, +1) == pytest.approx(sps.t.cdf(-4, 10))
    # far below the margin on the other side still rejects "as large as the reference on the claimed side"
    assert stats.tost_p(-5.0, 0.05, 10, 0.3, +1) == pytest.approx(sps.t.cdf(-106, 10))
    # a negative claim: H0 effect <= -0.3; t = (-0.1 + 0.3) / 0.05 = 4
    assert stats.tost_p(-0.1, 0.05, 10, 0.3, -1) == pytest.approx(sps.t.sf(4, 10))
    assert stats.tost_p(-0.1, 0.05, 10, -0.3, -1) == pytest.approx(sps.t.sf(4, 10))  # |margin|


def test_tost_p_undirected_takes_the_larger_one_sided_p():
    # effect 0.1, se 0.05, margin 0.3: upper t = -4, lower t = (0.1 + 0.3) / 0.05 = 8 -> max is the upper
    assert stats.tost_p(0.1, 0.05, 10, 0.3, 0) == pytest.approx(max(sps.t.cdf(-4, 10), sps.t.sf(8, 10)))
    assert stats.tost_p(0.1, 0.05, 10, 0.3, 0) == pytest.approx(sps.t.cdf(-4, 10))
    # far below: the lower side fails -> p near 1
    assert stats.tost_p(-5.0, 0.05, 10, 0.3, 0) == pytest.approx(sps.t.sf((-5 + 0.3) / 0.05, 10))
    assert stats.tost_p(-5.0, 0.05, 10, 0.3, 0) > 0.99


def test_tost_p_zero_se_and_undefined_margin():
    assert stats.tost_p(0.1, 0.0, 10, 0.3, 0) == 0.0
    assert stats.tost_p(0.4, 0.0, 10, 0.3, 0) == 1.0
    assert stats.tost_p(-0.4, 0.0, 10, 0.3, +1) == 0.0  # below the margin on the claimed side
    assert stats.tost_p(-0.4, 0.0, 10, 0.3, 0) == 1.0
    assert np.isnan(stats.tost_p(0.1, 0.05, 10, np.nan, 0))
    assert np.isnan(stats.tost_p(0.1, 0.05, 10, 0.0, 0))
    assert np.isnan(stats.tost_p(np.nan, 0.05, 10, 0.3, 0))


# --- verdicts --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("effect", "lo", "hi", "p", "p_tost", "sign", "ref", "expected"), [
    (0.2, 0.1, 0.3, 0.01, 0.9, 1, 0.25, "reproduced"),  # far bound 0.3 reaches the reference 0.25
    (0.2, 0.1, 0.3, 0.01, 0.9, 1, 0.3, "reproduced"),  # far bound == reference is not below it
    (0.2, 0.1, 0.3, 0.01, 0.9, 1, 0.4, "reproduced, smaller than the reference"),
    (0.2, 0.1, 0.3, 0.01, 0.9, 1, -0.4, "reproduced, smaller than the reference"),  # |reference|
    (0.2, 0.1, 0.3, 0.01, 0.9, 1, np.nan, "reproduced"),  # no reference: nothing to be smaller than
    (-0.2, -0.3, -0.1, 0.01, 0.9, -1, 0.25, "reproduced"),  # far bound of a negative effect: -lo = 0.3
    (-0.2, -0.3, -0.1, 0.01, 0.9, -1, 0.35, "reproduced, smaller than the reference"),
    (-0.2, -0.3, -0.1, 0.01, 0.9, 0, 0.25, "reproduced"),  # undirected: either side
    (0.2, 0.1, 0.3, 0.01, 0.9, 0, 0.25, "reproduced"),
    (-0.2, -0.3, -0.1, 0.01, 0.0, 1, 0.25, "contradicted"),  # decided on the other side (p_tost is moot)
    (0.2, 0.1, 0.3, 0.01, 0.9, -1, 0.25, "contradicted"),
    (0.01, -0.05, 0.07, 0.6, 0.01, 1, 0.25, "absent"),  # not significant, equivalence rejects the reference
    (0.2, 0.1, 0.3, 0.06, 0.01, 1, 0.25, "absent"),  # CI clear of 0 but p_adj >= alpha: not decided
    (0.01, -0.05, 0.07, 0.6, 0.05, 1, 0.25, "inconclusive"),  # p_tost == alpha is not < alpha
    (0.01, -0.05, 0.07, 0.6, 0.3, 1, 0.25, "inconclusive"),
    (0.1, -0.05, 0.25, 0.01, 0.3, 1, 0.25, "inconclusive"),  # significant p, CI straddles 0: not decided
    (0.2, 0.1, 0.3, 0.05, 0.3, 1, 0.25, "inconclusive"),  # p_adj == alpha is not < alpha
    (0.01, -0.05, 0.07, 0.6, np.nan, 1, 0.25, "inconclusive"),  # no equivalence test
    (0.2, 0.1, 0.3, np.nan, 0.01, 1, 0.25, "not tested"),
])
def test_verdict_table(effect, lo, hi, p, p_tost, sign, ref, expected):
    assert expected in stats.VERDICTS
    assert stats.verdict(effect, lo, hi, p, p_tost, sign, ref, 0.05) == expected


def test_verdict_alpha_is_the_threshold():
    assert stats.verdict(0.2, 0.1, 0.3, 0.06, 0.9, 1, 0.25, alpha=0.1) == "reproduced"
    assert stats.verdict(0.01, -0.05, 0.07, 0.6, 0.08, 1, 0.25, alpha=0.1) == "absent"


def test_verdict_without_ci_decides_on_p_and_the_effect_sign():
    # an F test: no CI, the effect's sign decides
    assert stats.verdict(0.05, np.nan, np.nan, 0.001, 0.9, 0, 0.02) == "reproduced"
    assert stats.verdict(0.05, np.nan, np.nan, 0.2, 0.01, 0, 0.02) == "absent"
    assert stats.decided_side(-0.05, np.nan, np.nan, 0.001) == -1
    assert stats.decided_side(0.05, 0.01, 0.1, 0.001) == 1 and stats.decided_side(0.05, -0.01, 0.1, 0.001) == 0


@pytest.mark.parametrize(("effect", "lo", "hi", "p", "p_tost", "expected"), [
    (0.2, 0.1, 0.3, 0.01, 0.9, "control failed"),  # decided away from 0, either side
    (-0.2, -0.3, -0.1, 0.01, 0.9, "control failed"),
    (0.01, -0.05, 0.07, 0.6, 0.01, "null, as expected"),  # equivalent to 0 within the margin
    (0.01, -0.05, 0.07, 0.6, 0.3, "inconclusive"),
    (0.01, -0.05, 0.07, np.nan, 0.01, "not tested"),
])
def test_control_verdict_maps_the_verdicts(effect, lo, hi, p, p_tost, expected):
    assert expected in stats.CONTROL_VERDICTS
    assert stats.control_verdict(effect, lo, hi, p, p_tost, 0.05) == expected


def test_verdict_rejects_bad_sign():
    with pytest.raises(ValueError, match="expected_sign"):
        stats.verdict(0.1, 0.1, 0.2, 0.01, 0.5, 2, 0.2)
    with pytest.raises(ValueError, match="expected_sign"):
        stats.verdict(0.1, 0.1, 0.2, np.nan, 0.5, 0.5, 0.2)  # checked before "not tested"


def test_bootstrap_ci_constant_and_known_spread():
    assert stats.bootstrap_ci(np.ones(10), 100, 0.95, 0) == (1.0, 1.0, 1.0)
    values = np.r_[np.zeros(500), np.ones(500)]
    mean, lo, hi = stats.bootstrap_ci(values, 2000, 0.95, 0)
    se = 0.5 / np.sqrt(1000)  # binomial standard error at p = 0.5
    assert mean == 0.5
    assert lo == pytest.approx(0.5 - 1.96 * se, abs=0.01) and hi == pytest.approx(0.5 + 1.96 * se, abs=0.01)
    assert stats.bootstrap_ci(values, 2000, 0.95, 0) == (mean, lo, hi)  # seeded

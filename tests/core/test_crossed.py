"""The crossed (demonstration sets x test examples) cluster-robust t, Welch's F over settings and their power,
against hand computations of the two-way cluster sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.oneway import anova_oneway

from iclgd.core import crossed

SETS, EXAMPLES = 3, 4
# y[s, e] = set effect + example effect + a little cell noise: both levels carry variance
A, B = np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.5, 1.5, 3.0])
NOISE = np.array([[0.1, -0.1, 0.0, 0.0], [0.0, 0.2, -0.2, 0.0], [-0.1, 0.0, 0.1, 0.1]])
GRID = A[:, None] + B[None, :] + NOISE


def long(grid: np.ndarray, set_prefix: str = "s", example_prefix: str = "e"):
    """(values, set labels, example labels) of a sets x examples grid, row-major."""
    s, e = np.meshgrid(np.arange(grid.shape[0]), np.arange(grid.shape[1]), indexing="ij")
    return (grid.ravel(), np.array([f"{set_prefix}{i}" for i in s.ravel()]),
            np.array([f"{example_prefix}{j}" for j in e.ravel()]))


def cgm(grid: np.ndarray) -> tuple[float, float, float]:
    """Two-way CGM by hand for one setting: influence (y - mean) / n, summed per cluster and squared,
    times G / (G - 1) per level (sets, examples, cells)."""
    n = grid.size
    psi = (grid - grid.mean()) / n
    g_s, g_e = grid.shape
    v_set = g_s / (g_s - 1) * sum(psi[s, :].sum() ** 2 for s in range(g_s))
    v_ex = g_e / (g_e - 1) * sum(psi[:, e].sum() ** 2 for e in range(g_e))
    v_both = n / (n - 1) * (psi**2).sum()
    return v_set, v_ex, v_both


def test_covariance_matches_the_hand_computed_cluster_sums():
    cov = crossed.covariance(*long(GRID))
    v_set, v_ex, v_both = cgm(GRID)
    assert cov["means"] == pytest.approx([GRID.mean()])
    assert float(cov["v_set"][0, 0]) == pytest.approx(v_set)
    assert float(cov["v_example"][0, 0]) == pytest.approx(v_ex)
    assert float(cov["v_both"][0, 0]) == pytest.approx(v_both)
    assert (cov["g_set"], cov["g_example"], cov["g_both"]) == (3, 4, 12)
    assert (cov["df_set"], cov["df_example"], cov["df_both"]) == pytest.approx((2, 3, 11))  # G - 1 each
    parts = crossed.contrast_parts(cov, np.array([1.0]))
    assert (parts.set, parts.example, parts.residual) == pytest.approx((v_set - v_both, v_ex - v_both, v_both))
    assert parts.set > 0 and parts.example > 0  # both levels kept


def test_mean_test_is_the_satterthwaite_t_of_the_three_parts():
    v_set, v_ex, v_both = cgm(GRID)
    var = v_set + v_ex - v_both
    df = var**2 / (v_set**2 / 2 + v_ex**2 / 3 + v_both**2 / 11)
    res = crossed.mean_test(*long(GRID), alpha=0.05)
    assert res["effect"] == pytest.approx(GRID.mean())
    assert res["se"] == pytest.approx(math.sqrt(var)) and res["df"] == pytest.approx(df)
    assert res["p"] == pytest.approx(2 * stats.t.sf(GRID.mean() / math.sqrt(var), df))
    assert res["effect_lo"] == pytest.approx(GRID.mean() - stats.t.ppf(0.975, df) * math.sqrt(var))
    assert res["tost_hi"] == pytest.approx(GRID.mean() + stats.t.ppf(0.95, df) * math.sqrt(var))
    assert (res["n_sets"], res["n_examples"], res["n_settings"], res["n_obs"]) == (3, 4, 1, 12)


def test_a_level_with_a_negative_component_is_dropped():
    # no set effect at all: V_set < V_both, so the test runs on the example level alone with G_example - 1 df
    grid = np.array([[0.0, 1.0, 2.0, 4.0], [0.3, 0.7, 2.2, 3.9], [-0.2, 1.1, 1.9, 4.1]])
    v_set, v_ex, v_both = cgm(grid)
    assert v_set < v_both < v_ex
    res = crossed.mean_test(*long(grid))
    assert res["se"] == pytest.approx(math.sqrt(v_ex)) and res["df"] == pytest.approx(3)


def test_settings_weigh_equally_not_the_pooled_rows():
    # setting a: 3 sets x 4 examples of GRID; setting b: the same sets on only 2 examples, values 10 + ...
    ya, sa, ea = long(GRID)
    small = 10 + GRID[:, :2]
    yb, sb, eb = long(small)
    res = crossed.mean_test(np.r_[ya, yb], np.r_[sa, sb], np.r_[ea, eb], settings=np.r_[["a"] * 12, ["b"] * 6])
    expected = (GRID.mean() + small.mean()) / 2
    assert res["effect"] == pytest.approx(expected)
    assert res["effect"] != pytest.approx(np.r_[ya, yb].mean())  # the pooled mean would weigh a twice
    # the examples e0, e1 of setting b are the same clusters as a's: 4 example clusters, 3 set clusters
    assert (res["n_sets"], res["n_examples"], res["n_settings"], res["n_obs"]) == (3, 4, 2, 18)


def test_one_example_label_under_two_settings_is_one_cluster():
    other = GRID[::-1] * 0.5 + 1.0  # setting b on the same 3 sets x 4 examples
    ya, sa, ea = long(GRID)
    yb, sb, eb = long(other)
    settings = np.r_[["a"] * 12, ["b"] * 12]
    shared = crossed.covariance(np.r_[ya, yb], np.r_[sa, sb], np.r_[ea, eb], settings)
    assert (shared["g_set"], shared["g_example"], shared["g_both"]) == (3, 4, 12)
    # the contrast (a + b) / 2 sums both settings' influences within each example before squaring
    pa, pb = (GRID - GRID.mean()) / 12, (other - other.mean()) / 12
    w = np.array([0.5, 0.5])
    v_ex = 4 / 3 * sum((0.5 * pa[:, e].sum() + 0.5 * pb[:, e].sum()) ** 2 for e in range(4))
    assert float(w @ shared["v_example"] @ w) == pytest.approx(v_ex)
    # relabel b's examples: 8 clusters, and the cross-setting covariance of the example level is gone
    apart = crossed.covariance(np.r_[ya, yb], np.r_[sa, sb], np.r_[ea, np.char.add("x", eb)], settings)
    assert apart["g_example"] == 8
    assert apart["v_example"][0, 1] == 0.0 and shared["v_example"][0, 1] != 0.0


def test_one_demonstration_set_gives_no_test():
    res = crossed.mean_test(*long(GRID[:1]))
    assert np.isnan(res["p"]) and np.isnan(res["se"]) and res["parts"] is None
    assert res["effect"] == pytest.approx(GRID[0].mean())
    assert res["n_sets"] == 1
    with pytest.raises(ValueError, match="finite"):
        crossed.mean_test(np.array([1.0, np.nan]), ["s0", "s1"], ["e0", "e0"])


def test_power_is_alpha_at_no_effect_and_grows_with_effect_and_sets():
    parts = crossed.mean_test(*long(GRID))["parts"]
    assert crossed.power(0.0, parts, 0.05) == pytest.approx(0.05)
    assert crossed.power(0.0, parts, 0.01) == pytest.approx(0.01)
    p1, p2, p3 = (crossed.power(e, parts, 0.05) for e in (0.5, 1.0, 2.0))
    assert 0.05 < p1 < p2 < p3
    assert crossed.power(1.0, parts, 0.05, set_scale=4.0) > p2
    # power is the noncentral t at the fitted variance and Satterthwaite df
    var, df = parts.variance()
    crit = stats.t.ppf(0.975, df)
    assert p2 == pytest.approx(stats.nct.sf(crit, df, 1 / math.sqrt(var)) + stats.nct.cdf(-crit, df, 1 / math.sqrt(var)))


def test_parts_variance_rescales_each_level_by_its_own_n():
    parts = crossed.Parts(set=0.04, example=0.02, residual=0.01, df_set=4, df_example=39, df_both=156)
    var, df = parts.variance()
    assert var == pytest.approx(0.07)
    assert df == pytest.approx(0.07**2 / (0.05**2 / 4 + 0.03**2 / 39 + 0.01**2 / 156))
    var2, df2 = parts.variance(set_scale=2.0)  # twice the sets: the set part and the residual halve
    assert var2 == pytest.approx(0.02 + 0.02 + 0.005)
    assert df2 == pytest.approx(0.045**2 / (0.025**2 / 8 + 0.025**2 / 39 + 0.005**2 / 312))


def heterogeneity_data(shift: float):
    """4 settings on shared 5 sets x 10 examples; setting d's values shifted by `shift`."""
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 0.3, (5, 10)) + rng.normal(0.0, 0.2, 5)[:, None] + rng.normal(0.0, 0.2, 10)[None, :]
    values, sets, examples, settings = [], [], [], []
    for name in "abcd":
        grid = base if name == "a" else rng.permutation(base.ravel()).reshape(base.shape)  # the same mean
        grid = grid + (shift if name == "d" else 0.0)
        y, s, e = long(grid)
        values.append(y), sets.append(s), examples.append(e), settings.append([name] * y.size)
    return np.concatenate(values), np.concatenate(sets), np.concatenate(examples), np.concatenate(settings)


def test_heterogeneity_test_large_p_for_equal_means_small_p_for_a_planted_difference():
    equal = crossed.heterogeneity_test(*heterogeneity_data(0.0), seed=0)
    assert equal["test"] == "welch-F" and equal["n_settings"] == 4
    assert equal["F"] == pytest.approx(0.0, abs=1e-9) and equal["p"] == pytest.approx(1.0)
    assert equal["effect"] == pytest.approx(0.0, abs=1e-12)
    planted = crossed.heterogeneity_test(*heterogeneity_data(1.0), seed=0)
    assert planted["p"] < 1e-3
    # effect: the SD of the four setting means (three equal, one 1.0 higher): sqrt(3/16) = 0.433
    assert planted["effect"] == pytest.approx(math.sqrt(3) / 4)
    assert planted["effect_lo"] < planted["effect"] < planted["effect_hi"]
    with pytest.raises(ValueError, match="two settings"):
        crossed.heterogeneity_test(*long(GRID), settings=["a"] * 12)


def fixed(variance: float, df: float) -> crossed.Parts:
    """Parts whose variance() is (variance, df): the residual level alone."""
    return crossed.Parts(set=0.0, example=0.0, residual=variance, df_set=1, df_example=1, df_both=df)


def test_welch_hand_computed():
    # means 0, 1, 3, variances 1, dfs 10: weights 1, centre 4/3, sum w (m - c)^2 = 16/9 + 1/9 + 25/9 = 14/3
    # -> numerator 7/3; lambda = 3 (2/3)^2 / 10 = 2/15; denominator 1 + 2 * 1 / 8 * 2/15 = 31/30
    f, df1, df2 = crossed.welch(np.array([0.0, 1.0, 3.0]), [fixed(1.0, 10)] * 3)
    assert f == pytest.approx(70 / 31) and df1 == 2 and df2 == pytest.approx(20.0)  # (9 - 1) / (3 * 2/15)


def test_welch_matches_welchs_anova_on_raw_groups():
    rng = np.random.default_rng(1)
    groups = [rng.normal(0.0, 1.0, 8), rng.normal(0.5, 2.0, 12), rng.normal(1.0, 0.5, 6)]
    means = np.array([g.mean() for g in groups])
    parts = [fixed(g.var(ddof=1) / len(g), len(g) - 1) for g in groups]
    f, df1, df2 = crossed.welch(means, parts)
    ref = anova_oneway(groups, use_var="unequal")
    assert f == pytest.approx(ref.statistic) and df1 == pytest.approx(ref.df[0]) and df2 == pytest.approx(ref.df[1])
    assert math.isnan(crossed.welch(means, [fixed(0.0, 5)] * 3)[0])

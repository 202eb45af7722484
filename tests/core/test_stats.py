"""Paired significance tests against hand-computed cases, plus their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
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


# --- Wilcoxon ------------------------------------------------------------------------------------

def test_wilcoxon_hand_computed():
    # d = [1, -2, 3, 4, 5]: ranks of |d| are 1..5; W+ = 1+3+4+5 = 13, W- = 2 -> statistic min = 2.
    # Exact two-sided p: subsets of {1..5} with rank sum <= 2 are {}, {1}, {2} -> p = 2 * 3 / 2^5 = 0.1875
    res = stats.wilcoxon([1, -2, 3, 4, 5], [0, 0, 0, 0, 0], *BOOT)
    assert res["statistic"] == pytest.approx(2.0)
    assert res["p"] == pytest.approx(0.1875)
    assert res["effect"] == pytest.approx(11 / 5)  # mean of d
    assert res["median_diff"] == pytest.approx(3.0)
    assert res["n"] == 5 and res["n_dropped"] == 0


def test_wilcoxon_drops_and_counts_nan_pairs():
    # the same differences as above, with two NaN pairs appended (one on each side)
    res = stats.wilcoxon([2, -1, 4, 5, 6, np.nan, 1.0], [1, 1, 1, 1, 1, 0.0, np.nan], *BOOT)
    assert res["n"] == 5 and res["n_dropped"] == 2
    assert res["p"] == pytest.approx(0.1875)


def test_wilcoxon_drops_zero_differences_before_ranking():
    # d = [0, 1, -2, 3, 4, 5]: zero_method "wilcox" drops the 0 -> the case above, statistic 2, p 0.1875
    # ("zsplit" would rank |d| 1..6 and split the zero's rank: W- = 0.5 + 3 = 3.5).
    res = stats.wilcoxon([0, 1, -2, 3, 4, 5], [0, 0, 0, 0, 0, 0], *BOOT)
    assert res["statistic"] == pytest.approx(2.0)
    assert res["p"] == pytest.approx(0.1875)
    assert res["n"] == 6  # the zero still counts in n and in the mean difference
    assert res["effect"] == pytest.approx(11 / 6)


def test_wilcoxon_all_zero_differences_gives_p_one():
    res = stats.wilcoxon([0.3, 0.5, 0.7], [0.3, 0.5, 0.7], *BOOT)
    assert res["p"] == 1.0
    assert res["effect"] == 0.0 and res["median_diff"] == 0.0


def test_wilcoxon_rejects_unequal_lengths():
    with pytest.raises(ValueError, match=r"3 and 2"):
        stats.wilcoxon([1, 2, 3], [1, 2], *BOOT)


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


# --- GEE -----------------------------------------------------------------------------------------

def clustered(n_groups: int = 40, per_group: int = 20, effect: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """Rows share a random intercept within each seed: the correlation the GEE must absorb."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(n_groups), per_group)
    treat = np.tile([False, True], n_groups * per_group // 2)
    intercept = rng.normal(0, 0.8, n_groups)[group]
    return pd.DataFrame({
        "seed": group, "finetune": treat, "dataset": rng.choice(["sst2", "rte"], len(group)),
        "logprob": effect * treat + intercept + rng.normal(0, 1, len(group)),
        # binary: logit(P) = -0.3 + 1.0 * treat + small cluster effect (sd 0.2, so the marginal
        # log-odds ratio stays ~1.0 rather than being attenuated)
        "correct": rng.random(len(group)) < 1 / (1 + np.exp(-(-0.3 + 1.0 * treat + rng.normal(0, 0.2, n_groups)[group]))),
    })


def test_gee_recovers_planted_gaussian_effect():
    frame = clustered(effect=0.5)
    res = stats.gee_effect(frame, "logprob", "finetune", "seed", covariates=["dataset"])
    assert res["family"] == "gaussian" and res["fallback"] is None
    assert res["effect_lo"] < 0.5 < res["effect_hi"]
    assert res["effect_lo"] > 0 and res["p"] < 1e-3
    assert res["n_groups"] == 40 and res["n_obs"] == 800
    assert res["z"] == pytest.approx(res["effect"] / res["se"])


def test_gee_binary_outcome_uses_binomial_and_recovers_log_odds():
    res = stats.gee_effect(clustered(), "correct", "finetune", "seed")
    assert res["family"] == "binomial"
    assert res["effect_lo"] < 1.0 < res["effect_hi"]
    assert res["effect_lo"] > 0


def test_gee_null_effect_not_significant():
    res = stats.gee_effect(clustered(effect=0.0, seed=2), "logprob", "finetune", "seed")
    assert res["effect_lo"] < 0 < res["effect_hi"]


def test_gee_single_group_falls_back_to_independence():
    frame = clustered().query("seed == 0")
    res = stats.gee_effect(frame, "logprob", "finetune", "seed")
    assert res["n_groups"] == 1 and res["fallback"] == "glm-independence"
    assert res["n_obs"] == 20 and 0 <= res["p"] <= 1


def test_gee_invalid_input_raises_clear_value_error():
    frame = clustered()
    with pytest.raises(ValueError, match="no_such_column"):
        stats.gee_effect(frame, "logprob", "finetune", "no_such_column")
    with pytest.raises(ValueError, match="dataset"):  # a string column is not a 0/1 indicator
        stats.gee_effect(frame, "logprob", "dataset", "seed")
    with pytest.raises(ValueError, match="single value"):
        stats.gee_effect(frame.assign(finetune=True), "logprob", "finetune", "seed")


# --- interaction ANOVA ---------------------------------------------------------------------------

def grid(interaction: float, seed: int) -> pd.DataFrame:
    """Balanced method x dataset x model grid; fine-tuning gains `interaction` on dataset 'a' only."""
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product([["icl", "finetune"], ["a", "b", "c"], ["m1", "m2"], range(20)],
                                       names=["method", "dataset", "model", "rep"])
    frame = index.to_frame(index=False).assign(k=4)
    gain = interaction * ((frame["method"] == "finetune") & (frame["dataset"] == "a"))
    return frame.assign(acc=gain + 0.3 * (frame["dataset"] == "b") + rng.normal(0, 1, len(frame)))


def test_interaction_anova_detects_planted_interaction():
    table = stats.interaction_anova(grid(1.5, seed=0), "acc", ["dataset", "model", "k"]).set_index("term")
    assert table.loc["method:dataset", "p"] < 1e-4
    assert table.loc["method:dataset", "df"] == 2  # (2 - 1) * (3 - 1)
    assert table.loc["method:model", "p"] > 1e-3  # nothing planted there (p ~ 0.05 by chance for this seed)
    assert table.loc["Residual", "df"] == 240 - 8  # 2*3*2*20 rows minus 1 + 1 + 2 + 1 + 2 + 1 parameters
    assert table.attrs["dropped"] == ["k"]  # a single level of k cannot vary
    assert table.attrs["formula"] == "acc ~ C(method) * (C(dataset) + C(model))"


def test_interaction_anova_no_interaction_large_p():
    table = stats.interaction_anova(grid(0.0, seed=1), "acc", ["dataset", "model"]).set_index("term")
    assert table.loc["method:dataset", "p"] > 0.05
    assert list(table.index) == [
        "method", "dataset", "model", "method:dataset", "method:model", "Residual"]
    assert table.attrs["dropped"] == []


def test_interaction_anova_invalid_input():
    with pytest.raises(ValueError, match="seedling"):
        stats.interaction_anova(grid(0.0, seed=1), "acc", ["seedling"])
    with pytest.raises(ValueError, match="two levels"):
        stats.interaction_anova(grid(0.0, seed=1).query("method == 'icl'"), "acc", ["dataset"])


# --- verdicts --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("lo", "hi", "p", "sign", "mde", "ref", "expected"), [
    (0.1, 0.3, 0.01, 1, 0.5, 0.2, "reproduced"),      # decided: power does not matter
    (-0.3, -0.1, 0.01, -1, 0.1, 0.2, "reproduced"),
    (-0.3, -0.1, 0.01, 1, 0.1, 0.2, "contradicted"),
    (0.1, 0.3, 0.01, -1, 0.1, 0.2, "contradicted"),
    (-0.3, -0.1, 0.01, 0, 0.1, 0.2, "reproduced"),      # undirected claim: either side
    (0.1, 0.3, 0.06, 1, 0.1, 0.2, "absent at adequate power"),  # CI clear of 0 but p_adj >= alpha
    (0.1, 0.3, 0.05, 1, 0.2, 0.2, "absent at adequate power"),  # p_adj == alpha is not < alpha; mde == ref
    (-0.1, 0.3, 0.01, 1, 0.3, 0.2, "underpowered"),     # significant p but CI straddles 0; mde > ref
    (-0.1, 0.3, 0.4, 1, 0.1, -0.2, "absent at adequate power"),  # the reference's sign does not matter
    (-0.1, 0.3, 0.4, 1, np.inf, 0.2, "underpowered"),   # no effect reaches 80 % power at this n
    (-0.1, 0.3, 0.4, 1, 0.1, np.nan, "underpowered"),   # no reference: nothing can be called absent
    (0.1, 0.3, np.nan, 1, 0.1, 0.2, "not tested"),
])
def test_verdict_four_ways(lo, hi, p, sign, mde, ref, expected):
    assert stats.verdict((lo + hi) / 2, lo, hi, p, sign, mde, ref) == expected


def test_verdict_without_ci_decides_on_p_and_the_effect_sign():
    assert stats.verdict(0.05, np.nan, np.nan, 0.001, 0, 0.01, 0.02) == "reproduced"  # an F test
    assert stats.verdict(0.05, np.nan, np.nan, 0.2, 0, 0.01, 0.02) == "absent at adequate power"


def test_verdict_rejects_bad_sign():
    with pytest.raises(ValueError, match="expected_sign"):
        stats.verdict(0.1, 0.1, 0.2, 0.01, 2)

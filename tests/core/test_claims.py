"""The claims table (iclgd.core.claims): Holm, power and verdicts within each family, references (seed effects,
ranges, SESOIs), sizing by each study's knob, and assembling every study's rows. Each study's own rows are
tested beside it (tests/<study>/test_claims.py), the LaTeX views in test_claims_tex.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestPower

from claims_support import CFG, SHEN_PARTS, construction, full_table, han_summary, kossen_row, shen_row, toy_row
from iclgd.core import claim_rows, claims, crossed, power, stats, studies
from iclgd.finetune import study as finetune_study
from iclgd.kernel import claims as kernel_claims
from iclgd.kernel import study as kernel_study
from iclgd.labels import study as labels_study


# --------------------------------------------------------------------------- the claims table


def test_claims_table_gives_every_verdict():
    table = full_table()
    assert table["verdict"].tolist() == [
        "reproduced",  # shen_pooled: undirected, far bound 0.2 >= 0.05
        "reproduced", "reproduced, smaller than the reference", "contradicted", "absent", "inconclusive",
        "not tested",
        "reproduced",  # han: the two ends of its reference range disagree, both say "reproduced"
        "reproduced", "reproduced", "reproduced",  # construction
        "null, as expected", "control failed",  # negative controls, after every claim
    ]
    assert table["block"].tolist() == ["claim"] * 11 + ["negative control"] * 2
    assert set(table.loc[table["block"] == "claim", "verdict"]) <= set(stats.VERDICTS)
    assert set(table.loc[table["block"] == "negative control", "verdict"]) <= set(stats.CONTROL_VERDICTS)
    assert table["criterion"].tolist()[:8] == ["two-sided"] + ["> 0"] * 7
    assert table["criterion"].tolist()[-2:] == ["= 0 (control)"] * 2
    assert table.loc[table["family"] == "construction", "test"].eq("exact").all()


def test_claims_table_holm_and_equivalence_within_each_family():
    table = full_table()
    kx = table[table["family"] == "kossen_x"]
    # 5 tested rows: sorted p 0.001, 0.001, 0.002, 0.7, 0.9 x 5, 4, 3, 2, 1 -> 0.005, 0.004 -> 0.005, 0.006, 1, 1
    np.testing.assert_allclose(kx["p_holm"].to_numpy(), [0.005, 0.005, 0.006, 1.0, 1.0, np.nan])
    # the equivalence p of row d: non-superiority against 0.3, t = (0 - 0.3) / 0.025 = -12, times 5 rows
    d = kx[kx["dataset"] == "d"].iloc[0]
    assert d["p_tost"] == pytest.approx(sps.t.cdf(-12, 19))
    e = kx[kx["dataset"] == "e"].iloc[0]
    assert e["p_tost"] == pytest.approx(sps.t.cdf((0.1 - 0.3) / 0.3, 9))
    assert e["p_tost_holm"] >= e["p_tost"] > 0.05
    ctrl = table[table["dataset"] == "novel"].iloc[0]
    # a control's equivalence test is two-sided TOST against the margin 0.1: the larger p is the upper side
    assert ctrl["p_tost"] == pytest.approx(sps.t.cdf((0.01 - 0.1) / 0.02, 19))
    assert ctrl["p_holm"] == pytest.approx(0.6)  # family of two controls: sorted 1e-4 x 2, 0.6 x 1
    assert table.loc[table["dataset"] == "novel2", "p_holm"].iloc[0] == pytest.approx(2e-4)


def test_claims_table_power_columns_are_for_the_rows_own_test():
    table = full_table()
    kx = table[table["family"] == "kossen_x"]
    assert kx["alpha_plan"].tolist() == pytest.approx([0.01] * 6)  # 0.05 / 5 tested rows, not by Holm rank
    e = kx[kx["dataset"] == "e"].iloc[0]
    sd = 0.3 * math.sqrt(10)
    assert TTestPower().power(effect_size=e["mde"] / sd, nobs=10, alpha=0.01) == pytest.approx(0.8, abs=1e-6)
    assert e["power_at_ref"] == pytest.approx(TTestPower().power(effect_size=0.3 / sd, nobs=10, alpha=0.01))
    n = e["n_needed"]
    assert TTestPower().power(effect_size=0.3 / sd, nobs=n, alpha=0.01) >= 0.8
    assert TTestPower().power(effect_size=0.3 / sd, nobs=n - 1, alpha=0.01) < 0.8
    assert e["n_decide"] == power.n_to_decide(full_plan(e), 0.1, 0.3, 0.01)
    f = kx[kx["dataset"] == "f"].iloc[0]
    assert np.isnan(f["mde"]) and np.isnan(f["n_needed"]) and np.isnan(f["n_decide"])
    assert (e["reference"], e["reference_kind"], e["reference_source"]) == (0.3, "seed", "Fig. 1")
    assert np.isnan(e["reference_hi"]) and e["seed_effect"] == 0.3
    shen = table[table["family"] == "shen_pooled"].iloc[0]
    assert shen["reference_kind"] == "SESOI" and shen["reference"] == 0.05 and np.isnan(shen["seed_effect"])
    assert shen["alpha_plan"] == pytest.approx(0.05)
    assert shen["power_at_ref"] == pytest.approx(crossed.power(0.05, SHEN_PARTS, 0.05))
    assert shen["mde"] == pytest.approx(power.mde(shen_row()["plan"], 0.05), rel=1e-6)
    assert crossed.power(shen["mde"], SHEN_PARTS, 0.05) == pytest.approx(0.8, abs=1e-6)
    controls = table[table["block"] == "negative control"]
    assert controls["n_needed"].isna().all()  # nothing to detect in a control


def full_plan(row) -> dict:
    sd = 0.3 * math.sqrt(10)
    return {"test": "t", "n": 10, "sd": sd, "se": 0.3, "df": 9.0, "max_effect": 2 * sd}


def test_han_reference_range_notes_which_end_decides():
    table = full_table()
    han = table[table["family"] == "han_kernel"].iloc[0]
    # kappa = (0.8 - 0.5) / 0.5 = 0.6 and (0.8 - 0.6) / 0.4 = 0.5, over the row's 1 - 0.5 room: 0.3 and 0.25
    assert han["reference"] == pytest.approx(0.3) and han["reference_hi"] == pytest.approx(0.25)
    assert han["seed_effect"] == pytest.approx(0.8)
    assert 0.25 < han["effect_hi"] < 0.3
    assert han["verdict"] == "reproduced"
    assert han["verdict_note"] == ("reproduced, smaller than the reference at ref. 0.300; reproduced at ref. 0.250")
    assert table.loc[table["family"] == "kossen_x", "verdict_note"].eq("").all()


def test_han_reference_range_with_conflicting_ends_is_inconclusive():
    # 9 head-only, 5 const-only, 15 both, 11 neither (n = 40, baseline 0.5 -> references 0.3 and 0.25):
    # p = P(Bin(14, 1/2) >= 9) = 0.212, not significant. Differences: 9 ones, 5 minus ones -> mean 0.1,
    # variance (14 - 40 x 0.01) / 39, se = sqrt(13.6 / 39 / 40) = 0.0934; non-superiority t = -2.14 against 0.3
    # (p 0.019: absent) but -1.61 against 0.25 (p 0.058: inconclusive)
    kernel = kernel_claims.kernel_claims(han_summary(9, 5, 15, 11))
    row = claims.claims_table([kernel], [construction()], CFG).iloc[0]
    se = math.sqrt(13.6 / 39 / 40)
    assert row["p"] == pytest.approx(sum(math.comb(14, j) for j in range(9, 15)) / 2**14)
    assert row["p_tost"] == pytest.approx(sps.t.cdf((0.1 - 0.3) / se, 39))
    assert row["p_tost"] < 0.05 < sps.t.cdf((0.1 - 0.25) / se, 39)
    assert row["verdict"] == "inconclusive"  # a verdict must hold across the range
    assert row["verdict_note"] == "absent at ref. 0.300; inconclusive at ref. 0.250"


def test_kernel_reference_carries_the_seeds_kappa_to_the_rows_baseline():
    kernel = kernel_claims.kernel_claims(pd.concat([han_summary(18, 0, 70, 12, "a"), han_summary(0, 0, 100, 0, "b")],
                                                   ignore_index=True))
    table = claims.claims_table([kernel], [construction()], CFG)
    # over a 0.7 baseline: kappa 0.6 x 0.3 = 0.18 and 0.5 x 0.3 = 0.15
    assert table["reference"].iloc[0] == pytest.approx(0.18) and table["reference_hi"].iloc[0] == pytest.approx(0.15)
    # ICL constant on the held-out part (baseline 1): no room above it, no reference, nothing can be called absent
    assert np.isnan(table["reference"].iloc[1]) and table["verdict"].iloc[1] == "inconclusive"


def test_a_decided_test_on_the_wrong_side_is_contradicted():
    table = claims.claims_table([pd.DataFrame([kossen_row("a", -0.3, -0.32, -0.28, 1e-4, 0.01, 20)])],
                                [construction()], CFG)
    assert table["verdict"].iloc[0] == "contradicted"


def test_claims_table_names_a_family_without_a_reference():
    with pytest.raises(ValueError, match="claims.references has no entry for claim family 'shen_new'"):
        claims.claims_table([pd.DataFrame([shen_row(family="shen_new")])], [construction()], CFG)


def test_a_level_reference_needs_the_seeds_baseline():
    refs = {**CFG["references"], "han_kernel": {"seed": 0.8, "level": True, "source": "Table 2"}}
    kernel = kernel_claims.kernel_claims(han_summary(18, 0, 50, 32))
    with pytest.raises(ValueError, match="claims.references.han_kernel: level: true needs seed_baseline"):
        claims.claims_table([kernel], [construction()], CFG | {"references": refs})


# --------------------------------------------------------------------------- sizing


SIZING_CFG = {"data": {"n_test": 20}, "labels": {"repetitions": 10}, "kernel": {"n_queries": None, "n_train_queries": 10},
              "icl": {"demo_seeds": [0, 1, 2]}}
#: each family's knob, as rule claims takes it from the family's study
KNOBS = {"shen_pooled": finetune_study.STUDY.knob, "kossen_x": labels_study.STUDY.knob,
         "han_kernel": kernel_study.STUDY.knob}


def test_sizing_turns_units_needed_into_the_config_value_that_sets_them():
    table = full_table()
    out = claims.sizing(table, SIZING_CFG | {"references": CFG["references"]}, KNOBS)
    assert set(out["family"]) == {"shen_pooled", "kossen_x", "han_kernel"}  # no construction, no controls
    by = out.set_index(["family", "dataset"])
    shen = by.loc[("shen_pooled", "all")]
    assert (shen["config_key"], shen["current"]) == ("icl.demo_seeds (count)", 3)
    # more sets cannot shrink the example part (0.0005): at the SESOI 0.05 its power stays below 0.8 -> inf
    assert crossed.power(0.05, SHEN_PARTS, 0.05, set_scale=1e6) < 0.8
    assert shen["n_needed"] == math.inf and shen["needed"] == math.inf
    kossen = by.loc[("kossen_x", "e")]
    assert (kossen["config_key"], kossen["current"]) == ("labels.repetitions", 10)
    assert kossen["needed"] == kossen["n_needed"] > 10  # one context per repetition
    assert np.isnan(by.loc[("kossen_x", "f"), "needed"])  # not tested: no N
    # 100 held-out queries out of 20 test + 10 extra: 100 / 30 held out per query; minus the 20 test queries
    han = by.loc[("han_kernel", "d")]
    assert han["config_key"] == "kernel.n_train_queries" and han["current"] == 10
    assert han["needed"] == max(0, math.ceil(han["n_needed"] / (100 / 30) - 20 - 1e-9))
    # targets: seed-quantified rows (the SESOI row is not one)
    assert not shen["target"] and kossen["target"] and han["target"]
    refs = {**CFG["references"], "kossen_x": {**CFG["references"]["kossen_x"], "datasets": ["sst2"]}}
    summary = claims.sizing_summary(claims.sizing(table, SIZING_CFG | {"references": refs}, KNOBS)).set_index("config_key")
    assert summary.loc["labels.repetitions", "target_rows"] == 0  # kossen_x's rows are not on SST-2
    assert summary.loc["kernel.n_train_queries", "needed"] == han["needed"]
    assert summary.loc["icl.demo_seeds (count)", "target_rows"] == 0
    assert np.isnan(summary.loc["icl.demo_seeds (count)", "needed"])


# --------------------------------------------------------------------------- assembling


def test_a_new_studys_rows_join_the_claims_table_sized_by_its_own_knob():
    toy_spec = studies.StudySpec(name="toy", title="toy", position=99, block=False,
                                 knob=lambda row, cfg: ("toy.n", cfg["toy_n"], 1.0, 0.0))
    cfg = {"alpha": 0.05, "power": 0.8, "references": {"toy_effect": {"sesoi": 0.1, "why": "declared"}}}
    parts = [claim_rows.ClaimRows("toy", pd.DataFrame([toy_row()]))]
    table, sizing = claims.assemble(parts, {"toy": toy_spec}, cfg, {"toy_n": 40})
    row = table.set_index("family").loc["toy_effect"]
    assert row["verdict"].startswith("reproduced") and row["block"] == "claim"
    assert list(sizing["config_key"]) == ["toy.n"] and sizing["current"].iloc[0] == 40

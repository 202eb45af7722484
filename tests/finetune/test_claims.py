"""Shen et al.'s claim rows (iclgd.finetune.claims): pairing ICL with the dev-selected fine-tuned model, the
crossed t tests per setting and pooled, their macros, and the permutation claim."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from claims_support import CFG, construction
from iclgd.core import claims
from iclgd.finetune import claims as shen_claims


def records(method: str, preds: list[int], labels: list[int], k: int = 2, lr: float = 0.0, seed: int = 0,
            **tags) -> pd.DataFrame:
    n = len(preds)
    return pd.DataFrame({
        "model": "m", "dataset": "d", "method": method, "k": k, "seed": seed, "order": 0,
        "optimizer": tags.get("optimizer", "none"), "subset": tags.get("subset", "none"), "lr": lr,
        "epoch": tags.get("epoch", 0), "uid": tags.get("uids", list(range(n))), "label": "x",
        "label_index": labels, "pred_index": preds, "full_correct": [p == y for p, y in zip(preds, labels)],
    })


LABELS = [0, 1] * 10


# ICL right on all 20 examples under both demonstration seeds; the selected GD run right on the first 13
# (seed 0: 7 discordant) and the first 15 (seed 1: 5 discordant)
GD_GOOD = {0: LABELS[:13] + [1 - y for y in LABELS[13:]], 1: LABELS[:15] + [1 - y for y in LABELS[15:]]}


GD_BAD = [1 - y for y in LABELS]  # the other lr gets everything wrong


GD_KW = {"optimizer": "gd", "subset": "all", "epoch": 5}


@pytest.fixture
def paired() -> pd.DataFrame:
    icl, ft, dev = [], [], []
    for seed in (0, 1):
        icl += [records("icl", LABELS, LABELS, seed=seed), records("icl", LABELS, LABELS, k=0, seed=seed)]
        ft += [records("finetune", GD_GOOD[seed], LABELS, lr=1e-3, seed=seed, **GD_KW),
               records("finetune", GD_BAD, LABELS, lr=1e-4, seed=seed, **GD_KW)]
        # dev: lr 1e-3 right on both dev examples, lr 1e-4 wrong on both -> 1e-3 is selected for each seed
        dev += [records("finetune", [0, 1], [0, 1], lr=1e-3, seed=seed, uids=[500, 501], **GD_KW),
                records("finetune", [1, 0], [0, 1], lr=1e-4, seed=seed, uids=[500, 501], **GD_KW)]
    dev = pd.concat(dev, ignore_index=True)
    dev["label_logprobs"] = [np.log([0.5, 0.5])] * len(dev)
    dev.loc[dev["lr"] == 1e-3, "label_logprobs"] = pd.Series([np.log([0.9, 0.1]), np.log([0.1, 0.9])] * 2,
                                                             index=dev.index[dev["lr"] == 1e-3])
    return shen_claims.paired_icl_gd(pd.concat(icl), pd.concat(ft), dev)


def test_pairing_uses_the_dev_selected_lr_and_skips_zero_shot(paired):
    assert len(paired) == 40 and set(paired["k"]) == {2} and set(paired["seed"]) == {0, 1}
    for seed in (0, 1):
        got = paired.loc[paired["seed"] == seed, "correct_gd"].tolist()
        assert got == [int(p == y) for p, y in zip(GD_GOOD[seed], LABELS)]
    assert paired["variant"].unique().tolist() == ["gd/all"]


def test_pairing_refuses_disjoint_records():
    icl = records("icl", [0], [0])
    ft = records("finetune", [0], [0], lr=1e-3, optimizer="gd", subset="all", epoch=1, uids=[99])
    dev = ft.assign(label_logprobs=[np.zeros(2)])
    with pytest.raises(ValueError, match="share the keys"):
        shen_claims.paired_icl_gd(icl, ft, dev)


def hand_crossed_p() -> tuple[float, float, float]:
    """(effect, se, p) of the crossed t for the fixture, by hand. ICL - GD per (seed, example): seed 0 has 7
    ones, seed 1 five, the rest 0; mean 12/40 = 0.3, influence (y - 0.3) / 40.
    Sets: sums (7 - 6)/40 = 0.025 and (5 - 6)/40 = -0.025 -> V_set = 2/1 * 2 * 0.025^2 = 0.0025.
    Examples: 13 with both 0 (-0.6/40), 2 with (1, 0) (0.4/40), 5 with both 1 (1.4/40)
      -> V_ex = 20/19 * (13 * 0.015^2 + 2 * 0.01^2 + 5 * 0.035^2) = 20/19 * 0.00925.
    Cells: 28 zeros (0.09) and 12 ones (0.49): V_both = 40/39 * 8.4 / 1600 = 0.0053846 > V_set, so the set level
    is dropped and the test is the example level alone: variance V_ex, df 19."""
    se = math.sqrt(20 / 19 * 0.00925)
    return 0.3, se, float(2 * sps.t.sf(0.3 / se, 19))


def test_icl_vs_gd_tests_are_crossed_t_tests_with_power_for_a_gap(paired):
    tests = shen_claims.icl_vs_gd_tests(paired, alpha=0.05)
    assert sorted(tests["family"]) == ["shen_icl_vs_gd_full_vocab", "shen_icl_vs_gd_label"]
    row = tests[tests["family"] == "shen_icl_vs_gd_label"].iloc[0]
    effect, se, p = hand_crossed_p()
    assert row["test"] == "crossed-t" and row["unit"] == "sets x examples"
    assert (row["n"], row["n_sets"], row["n_examples"]) == (2, 2, 20)
    assert row["effect"] == pytest.approx(effect) and row["se"] == pytest.approx(se)
    assert row["df"] == pytest.approx(19) and row["p"] == pytest.approx(p)
    assert row["p_holm"] == pytest.approx(row["p"])  # a family of one
    # power for a 20-point gap at alpha / 1: noncentral t with df 19 and the fitted SE
    crit, nc = sps.t.ppf(0.975, 19), 0.2 / se
    assert row["power_gap"] == pytest.approx(sps.nct.sf(crit, 19, nc) + sps.nct.cdf(-crit, 19, nc))
    assert "plan" not in tests
    macros = shen_claims.setting_macros(tests, 0.05)
    assert macros["ShenIclVsGdLabelN"] == "1" and macros["ShenIclVsGdLabelSig"] == "1"
    assert macros["ShenIclVsGdLabelIclBetter"] == "1" and macros["ShenIclVsGdLabelGdBetter"] == "0"
    assert macros["ShenIclVsGdLabelPowerTwenty"] == f"{100 * row['power_gap']:.0f}"


def test_shen_claims_pool_over_settings(paired):
    rows = shen_claims.shen_claims(paired, 0.05, seed=0).set_index("family")
    assert list(rows.index) == ["shen_pooled", "shen_pooled_full_vocab"]  # one setting: no inconsistency row
    effect, se, p = hand_crossed_p()
    assert rows.loc["shen_pooled", "effect"] == pytest.approx(effect)
    assert rows.loc["shen_pooled", "p"] == pytest.approx(p)
    assert rows.loc["shen_pooled", "plan"]["test"] == "crossed-t" and rows.loc["shen_pooled", "plan"]["n"] == 2
    # a second k with no gap at all: the pooled effect averages the two settings, and the gaps' SD is tested
    other = paired.assign(k=4, correct_gd=paired["correct_icl"], full_gd=paired["full_icl"])
    two = shen_claims.shen_claims(pd.concat([paired, other], ignore_index=True), 0.05, seed=0).set_index("family")
    assert two.loc["shen_pooled", "effect"] == pytest.approx((0.3 + 0.0) / 2)
    assert two.loc["shen_inconsistency", "test"] == "welch-F"
    assert two.loc["shen_inconsistency", "effect"] == pytest.approx(0.15)  # SD (ddof 0) of 0.3 and 0


def test_no_learned_gd_run_leaves_shen_claims_untested(paired):
    """Nothing to pair (no fine-tuned run learned its demonstrations): empty tests, the pooled claim has n = 0."""
    none = paired.iloc[:0]
    assert shen_claims.icl_vs_gd_tests(none, alpha=0.05).empty
    rows = shen_claims.shen_claims(none, 0.05, seed=0)
    assert rows["family"].tolist() == ["shen_pooled"] and rows["n"].tolist() == [0] and rows["p"].isna().all()
    table = claims.claims_table([rows], [construction()], CFG)
    assert table["verdict"].iloc[0] == "not tested"


def test_setting_macros_read_zero_of_zero_without_tests(paired):
    macros = shen_claims.setting_macros(shen_claims.icl_vs_gd_tests(paired.iloc[:0], alpha=0.05), 0.05)
    assert macros["ShenIclVsGdFullVocabN"] == "0" and macros["ShenIclVsGdLabelSig"] == "0"  # main.tex uses them
    assert macros["ShenIclVsGdLabelPowerTwenty"] == "--"

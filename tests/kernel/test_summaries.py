"""One run's frames and held-out statistics on hand-built captures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from claims_support import han_summary
from iclgd.kernel.attention import MASS_PARTS
from iclgd.kernel.summaries import eval_agreement_stats, head_table, mean_profile, probe_table


def test_mean_profile_averages_queries_and_demos():
    prof = np.zeros((2, 1, 2, 3, 4), dtype=np.float32)  # (Q, L, H, n, P)
    prof[0, 0, 1, :, 2] = 3.0  # query 0, head 1, position 2 -> mean over 2 queries = 1.5
    prof[1, 0, 0, 0, 0] = 6.0  # one demo of three, one query of two -> 1.0
    frame = mean_profile(prof)
    assert len(frame) == 1 * 2 * 4
    at = frame.set_index(["layer", "head", "position"])["attention"]
    assert at[(0, 1, 2)] == pytest.approx(1.5) and at[(0, 0, 0)] == pytest.approx(1.0)
    assert at.drop([(0, 1, 2), (0, 0, 0)]).abs().max() == 0


def test_head_table_scores_each_split_and_mass():
    # 4 queries, 1 layer, 2 heads, 2 demos labelled [0, 1]. Head 0 attends to demo 0, head 1 to demo 1.
    a = np.zeros((4, 1, 2, 2))
    a[:, 0, 0, 0] = 1.0
    a[:, 0, 1, 1] = 1.0
    labels = np.tile([0, 1], (4, 1))
    pred = np.array([0, 0, 1, 1])
    gold = np.array([0, 1, 1, 1])
    mass = np.zeros((4, 1, 2, len(MASS_PARTS)))
    mass[..., 0] = 0.25
    mass[..., 1] = 0.75
    table = head_table(a, labels, pred, gold, 2, np.array([0, 1]), np.array([2, 3]), mass,
                                     np.array([[0.1, -0.2]]))
    h0, h1 = table.iloc[0], table.iloc[1]
    assert (h0["select_agreement"], h0["eval_agreement"], h0["eval_accuracy"]) == (1.0, 0.0, 0.0)
    assert (h1["select_agreement"], h1["eval_agreement"], h1["select_accuracy"]) == (0.0, 1.0, 0.5)
    assert h1["sim_r"] == pytest.approx(-0.2) and h0["mass_label"] == 0.25 and h0["mass_input"] == 0.75


def test_probe_table_rows_and_planted_signal():
    rng = np.random.default_rng(0)
    n, offsets = 80, [-1, 0]
    y = rng.integers(0, 2, n)
    keys = rng.normal(size=(n, 2, 1, 4))
    keys[:, 1, 0, 0] += 6 * y  # offset 0 carries the target, offset -1 does not
    table = probe_table(keys, keys, y, y, offsets, 0.01, 0)
    assert set(table["target"]) == {"key->prediction", "value->label"} and len(table) == 2 * 2 * 1
    acc = table[table["target"] == "key->prediction"].set_index("offset")["test_accuracy"]
    assert acc[0] > 0.95 and acc[-1] < 0.8


def test_eval_agreement_stats_hand_case():
    # ICL predicts class 1 on 3 of 4 selection queries -> constant vote 1; on the held-out part pred = 1 in 2 of 10
    pred_sel, pred_ev = np.array([1, 1, 0, 1]), np.array([1, 1] + [0] * 8)
    agree = np.array([1] * 9 + [0])
    res = eval_agreement_stats(agree, pred_ev, pred_sel, 0, 2000, 0.95)
    assert res["eval_const_agreement"] == pytest.approx(0.2)
    # paired on the same queries: the head alone agrees on 7 (queries 2-8), the constant alone on none ->
    # one-sided exact McNemar p = P(Bin(7, 1/2) >= 7) = 2^-7
    assert (res["eval_head_only"], res["eval_const_only"]) == (7, 0)
    assert res["eval_agreement_p"] == pytest.approx(0.5**7)
    assert res["eval_diff"] == pytest.approx(0.7)
    assert res["eval_agreement_lo"] <= 0.9 <= res["eval_agreement_hi"]
    assert eval_agreement_stats(agree, np.ones(10, int), pred_sel, 0, 2000, 0.95)["eval_agreement_p"] == 1.0


def test_eval_agreement_stats_is_the_one_sided_exact_mcnemar():
    # 18 head-only, 0 const-only, 50 both, 32 neither: p = P(Bin(18, 1/2) >= 18) = 2^-18
    st = han_summary(18, 0, 50, 32).iloc[0]
    assert (st["eval_head_only"], st["eval_const_only"]) == (18, 0)
    assert st["eval_agreement_p"] == pytest.approx(2.0**-18)
    assert st["eval_const_agreement"] == pytest.approx(0.5) and st["eval_diff"] == pytest.approx(0.18)
    se = math.sqrt(0.18 * 0.82 * 100 / 99 / 100)  # per-query differences: 18 ones, 82 zeros
    assert st["eval_diff_se"] == pytest.approx(se)
    assert st["eval_diff_hi"] == pytest.approx(0.18 + sps.t.ppf(0.975, 99) * se)
    assert st["eval_diff_tost_lo"] == pytest.approx(0.18 - sps.t.ppf(0.95, 99) * se)

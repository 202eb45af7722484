"""Accuracy tables and Rec2FTP against hand-computed cases."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from iclgd.core import metrics


def records(rows):
    """rows: (seed, uid, label_index, pred_index, full_correct)."""
    base = {"model": "m", "dataset": "d", "method": "icl", "k": 2, "optimizer": "none", "subset": "none", "lr": 0.0, "epoch": 0}
    return pd.DataFrame([base | dict(zip(["seed", "uid", "label_index", "pred_index", "full_correct"], r)) for r in rows])


def test_accuracy_averages_seeds_within_examples():
    # uid 0: right under both seeds; uid 1: right under one of two; uid 2: never -> (1 + .5 + 0) / 3
    recs = records([(0, 0, 1, 1, True), (1, 0, 1, 1, False), (0, 1, 0, 0, False), (1, 1, 0, 1, False),
                    (0, 2, 1, 0, False), (1, 2, 1, 0, False)])
    row = metrics.accuracy_table(recs, n_boot=200, ci=0.95, seed=0).iloc[0]
    assert row["acc"] == pytest.approx(50.0)
    assert row["acc_full"] == pytest.approx(100 / 6)
    assert row["n_examples"] == 3 and row["n_seeds"] == 2
    assert row["acc_lo"] <= row["acc"] <= row["acc_hi"]
    per_seed = metrics.per_seed_accuracy(recs).set_index("seed")["acc"]
    assert per_seed[0] == pytest.approx(200 / 3) and per_seed[1] == pytest.approx(100 / 3)


def test_rec2ftp_hand_case_and_empty_denominator():
    # ex:    1  2  3  4  5  6
    zero = [0, 0, 0, 0, 1, 1]
    ft = [1, 1, 1, 0, 1, 1]
    icl = [1, 0, 1, 1, 1, 0]
    # ZS wrong & FT right: examples 1, 2, 3 -> n = 3; ICL right on 1 and 3 -> 2/3
    # (ex 4: FT wrong; ex 5, 6: ZS already right -> outside the denominator whatever ICL does)
    value, n_fixed = metrics.rec2ftp(zero, ft, icl)
    assert n_fixed == 3 and value == pytest.approx(2 / 3)
    value, n_fixed = metrics.rec2ftp([1, 1, 0], [1, 0, 0], [1, 1, 1])  # nothing that FT newly fixes
    assert n_fixed == 0 and math.isnan(value)



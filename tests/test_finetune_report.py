"""ICL vs fine-tuning tables: lr selection applied to test records, comparison on hand-made accuracies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iclgd import finetune_report


def recs(lr: float, correct: list[bool], epoch: int = 5, uids=None) -> pd.DataFrame:
    n = len(correct)
    return pd.DataFrame({
        "model": "m", "dataset": "d", "method": "finetune", "k": 2, "seed": 0, "order": 0,
        "optimizer": "gd", "subset": "all", "lr": lr, "epoch": epoch,
        "uid": uids if uids is not None else list(range(n)), "label_index": 1,
        "pred_index": [1 if c else 0 for c in correct], "full_correct": correct,
        "label_logprobs": [np.array([-1.0, -0.5])] * n,
    })


def test_selected_records_follow_dev_accuracy_not_test():
    dev = pd.concat([recs(1e-4, [True, False]), recs(1e-3, [True, True])])  # 1e-3 wins on dev
    test = pd.concat([recs(1e-4, [True] * 4, uids=[10, 11, 12, 13]), recs(1e-3, [False] * 4, uids=[10, 11, 12, 13])])
    chosen = finetune_report.selected_records(test, dev)
    assert set(chosen["lr"]) == {1e-3} and len(chosen) == 4


def test_final_epoch_keeps_the_last_checkpoint():
    both = pd.concat([recs(1e-3, [True], epoch=1), recs(1e-3, [False], epoch=5)])
    assert finetune_report.final_epoch(both)["epoch"].tolist() == [5]


def test_comparison_and_sentences():
    icl = pd.DataFrame({
        "model": "m", "dataset": "d", "method": "icl", "k": [0, 2], "acc": [50.0, 70.0],
        "acc_lo": [40.0, 60.0], "acc_hi": [60.0, 80.0],
    })
    ft = pd.DataFrame({"model": ["m"], "dataset": ["d"], "k": [2], "optimizer": ["gd"], "subset": ["all"], "acc": [55.0]})
    table = finetune_report.comparison(icl, ft)
    row = table.iloc[0]
    assert (row["zero_shot"], row["icl"], row["gd/all"]) == (50.0, 70.0, 55.0)
    assert "ICL is ahead in 1 of them" in finetune_report.comparison_summary(table)
    macros = finetune_report.comparison_macros(table)
    assert macros["AccFtMDKTwoGdAll"] == "55.0" and macros["NFinetuneSettings"] == "1"
    assert "gd/all" in finetune_report.comparison_table(table)


def test_matched_icl_keeps_twins_and_zero_shot():
    icl = pd.DataFrame({"model": "m", "dataset": "d", "k": [0, 2, 2, 4], "seed": [0, 0, 1, 0], "uid": 1})
    ft = pd.DataFrame({"model": "m", "dataset": "d", "k": [2, 4], "seed": [0, 0]})
    got = finetune_report.matched_icl(icl, ft)
    assert sorted(zip(got["k"], got["seed"])) == [(0, 0), (2, 0), (4, 0)]

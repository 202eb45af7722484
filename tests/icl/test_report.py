"""The ICL study's paper outputs (iclgd.icl.report): its macros, table and summary sentence on hand-made
accuracy frames."""

from __future__ import annotations

import pandas as pd

from iclgd.icl import report as icl_report
from text_support import numbers_per_sentence


def accuracies() -> pd.DataFrame:
    """Model m-2 on datasets d and e at k = 0 and 4, as rule icl_metrics writes them (plus a fine-tuned row)."""
    return pd.DataFrame({
        "model": "m-2", "dataset": ["d", "d", "e", "e", "d"], "method": ["icl"] * 4 + ["finetune"],
        "k": [0, 4, 0, 4, 4], "acc": [50.0, 70.0, 60.0, 90.0, 99.0], "acc_lo": [40.0, 60.0, 50.0, 80.0, 98.0],
        "acc_hi": [60.0, 80.0, 70.0, 95.0, 100.0], "acc_full": [45.0, 65.0, 55.0, 85.0, 99.0],
        "n_examples": [48, 48, 40, 40, 48], "n_seeds": [1, 5, 1, 5, 5],
    })


def test_icl_macros_name_every_setting_and_the_gain_over_zero_shot():
    macros = icl_report.icl_macros(accuracies())
    assert macros["AccIclMTwoDKFour"] == "70.0" and macros["AccIclMTwoDKFourLo"] == "60.0"
    assert macros["AccIclMTwoDKFourHi"] == "80.0" and macros["AccIclMTwoDKFourFull"] == "65.0"
    assert macros["AccIclMTwoEKZero"] == "60.0"
    assert macros["GainIclMTwoD"] == "20.0" and macros["GainIclMTwoE"] == "30.0"  # k = 4 minus k = 0
    assert (macros["NTest"], macros["NSeeds"], macros["KMax"]) == ("48", "5", "4")
    assert len([m for m in macros if m.startswith("AccIcl")]) == 4 * 4  # the fine-tuned row is not ICL's
    only_k4 = icl_report.icl_macros(accuracies().query("k == 4"))
    assert not any(m.startswith("Gain") for m in only_k4)  # no zero-shot row: no gain


def test_icl_table_has_one_column_per_k_with_the_cis():
    tex = icl_report.icl_table(accuracies())
    assert "\\label{tab:icl}" in tex and "$k=0$ & $k=4$" in tex
    assert "\\texttt{m-2}" in tex and "[60.0, 80.0]" in tex and "99.0" not in tex


def test_icl_summary_states_the_headline_means_and_points_to_the_table():
    """icl_report.icl_summary (rule icl_paper_numbers), on an accuracy frame like the ones above: the mean over
    datasets at the smallest and the largest k, the per-dataset CIs left to tab:icl."""
    acc = pd.DataFrame({
        "model": "m-2", "dataset": ["d", "d", "e", "e"], "method": "icl", "k": [0, 4, 0, 4],
        "acc": [50.0, 70.0, 60.0, 90.0], "acc_lo": [40.0, 60.0, 50.0, 80.0], "acc_hi": [60.0, 80.0, 70.0, 95.0],
    })
    text = icl_report.icl_summary(acc)
    assert "moves from 55.0\\% zero-shot to 80.0\\% at $k=4$" in text and "tab:icl" in text
    assert numbers_per_sentence(text) == [3]
    text = icl_report.icl_summary(acc.assign(k=acc["k"] + 1))
    assert "55.0\\% at the smallest $k$ to 80.0\\% at $k=5$" in text and numbers_per_sentence(text) == [3]

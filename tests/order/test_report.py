"""The order study's paper outputs (iclgd.order.report): ICL above every fine-tuned spread or not, the last
epoch, the figure, macros, table and sentences on a hand-made spread table."""

from __future__ import annotations

import pandas as pd
import pytest

from text_support import numbers_per_sentence


def toy_table() -> pd.DataFrame:
    """ICL spreads 0.2 (label) / 1e-5 (vocab); gd 0; sgd rises to 0.1 / 2e-5 (above ICL on the vocabulary)."""
    rows = []
    run = {"model": "m", "dataset": "agnews", "k": 8, "seed": 0, "n_queries": 4, "n_orders": 5}
    for stat, icl, sgd in (("label", 0.2, [0.05, 0.1]), ("vocab", 1e-5, [5e-6, 2e-5])):
        rows.append(run | {"method": "icl", "optimizer": "none", "subset": "none", "lr": 0.0, "epoch": 0,
                           "statistic": stat, "spread": icl, "lo": icl / 2, "hi": icl * 2})
        for epoch in (1, 2):
            for opt, value in (("gd", 0.0), ("sgd", sgd[epoch - 1])):
                rows.append(run | {"method": "finetune", "optimizer": opt, "subset": "v_deep", "lr": 0.1,
                                   "epoch": epoch, "statistic": stat, "spread": value, "lo": value, "hi": value})
    return pd.DataFrame(rows)


def test_icl_above_and_last_epoch():
    from iclgd.order import report as order_report

    above = order_report.icl_above(toy_table()).set_index("statistic")
    assert bool(above.loc["label", "icl_above_all"]) and above.loc["label", "ratio"] == pytest.approx(2.0)
    assert not bool(above.loc["vocab", "icl_above_all"])
    last = order_report.last_epoch(toy_table())
    assert set(last[last["method"] == "finetune"]["epoch"]) == {2} and (last["method"] == "icl").sum() == 2


def test_macros_and_summary_carry_the_numbers(tmp_path, default_config):
    from iclgd.order import report as order_report

    cfg = default_config["order"] | {"n_demos": 8, "orderings": 5, "epochs": 2, "subset": "v_deep",
                                     "optimizers": ["gd", "sgd"], "lrs": {"gd": 1.0, "sgd": 0.125, "adam": 1e-3}}
    macros = order_report.order_macros(toy_table(), cfg)
    assert macros["OrderMAgnewsIclLabel"] == "0.200" and macros["OrderMAgnewsSgdLabel"] == "0.100"
    assert macros["OrderMAgnewsGdLabel"] == "0" and macros["OrderMAgnewsIclVocab"] == "$1.0\\times 10^{-5}$"
    assert macros["OrderSubset"] == "v\\_deep" and macros["OrderLrSgd"] == "0.125" and macros["OrderLrAdam"] == "--"
    assert macros["OrderIclAboveLabel"] == "1" and macros["OrderIclAboveVocab"] == "0"
    assert macros["OrderK"] == "8" and macros["OrderOrderings"] == "5" and macros["OrderEpochs"] == "2"
    text = order_report.order_summary(toy_table())
    assert "on the label probabilities, ICL's output spreads across demonstration orderings by 0.200, above" in text
    assert "by $1.0\\times 10^{-5}$, not above" in text and "any scored epoch, $2.0\\times 10^{-5}$" in text
    assert numbers_per_sentence(text) == [2, 2] and "\\ref{tab:order}" in text
    tex = order_report.order_table(toy_table())  # what the sentences leave out: CIs, each optimizer's spread
    assert "\\label{tab:order}" in tex
    assert "label probs. & \\begin{tabular}[t]{@{}r@{}}0.200 \\\\ {}[0.100, 0.400]\\end{tabular} & 0 & 0.100 & 2 & 0.100 & yes" in tex
    assert "full vocab." in tex and "& 0 & $2.0\\times 10^{-5}$ & 2 & $2.0\\times 10^{-5}$ & no" in tex
    order_report.plot_spread(toy_table(), tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF") and (tmp_path / "f.png").stat().st_size > 0

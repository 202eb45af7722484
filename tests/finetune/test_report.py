"""ICL vs fine-tuning tables: lr selection applied to test records, comparison on hand-made accuracies."""

from __future__ import annotations


import numpy as np
import pandas as pd

from iclgd.finetune import report as finetune_report
from text_support import numbers_per_sentence


def recs(lr: float, correct: list[bool], epoch: int = 5, uids=None, logprobs=None) -> pd.DataFrame:
    """Records of gold label 1; `logprobs`: each query's label log-probs (default: the prediction's, loss 0.5)."""
    n = len(correct)
    if logprobs is None:
        logprobs = [[-1.0, -0.5] if c else [-0.5, -1.0] for c in correct]
    return pd.DataFrame({
        "model": "m", "dataset": "d", "method": "finetune", "k": 2, "seed": 0, "order": 0,
        "optimizer": "gd", "subset": "all", "lr": lr, "epoch": epoch,
        "uid": uids if uids is not None else list(range(n)), "label_index": 1,
        "pred_index": [1 if c else 0 for c in correct], "full_correct": correct,
        "label_logprobs": [np.array(lp) for lp in logprobs],
    })


def test_selected_records_follow_dev_loss_not_test():
    dev = pd.concat([recs(1e-4, [True, True], logprobs=[[-1.0, -0.5]] * 2),  # loss 0.5
                     recs(1e-3, [True, True], logprobs=[[-3.0, -0.1]] * 2)])  # same accuracy, loss 0.1: wins
    test = pd.concat([recs(1e-4, [True] * 4, uids=[10, 11, 12, 13]), recs(1e-3, [False] * 4, uids=[10, 11, 12, 13])])
    chosen = finetune_report.selected_records(test, dev)
    assert set(chosen["lr"]) == {1e-3} and len(chosen) == 4


def test_selected_records_prefer_the_lower_dev_loss_over_higher_dev_accuracy():
    dev = pd.concat([
        recs(1e-4, [True, True], logprobs=[[-0.75, -0.65]] * 2),  # both right, barely: loss 0.65
        recs(1e-3, [True, False], logprobs=[[-3.0, -0.05], [-0.6, -0.8]]),  # one wrong, loss (0.05 + 0.8) / 2
    ])
    test = pd.concat([recs(lr, [True] * 2, uids=[10, 11]) for lr in (1e-4, 1e-3)])
    assert set(finetune_report.selected_records(test, dev)["lr"]) == {1e-3}


def test_settings_without_a_converged_run_are_shown_not_compared():
    """Only converged runs have records; a (model, dataset, k) without one reads n.c., and the summary
    counts it as not compared instead of averaging over it."""
    icl = pd.DataFrame({
        "model": "m", "dataset": "d", "method": "icl", "k": [0, 2, 4], "acc": [50.0, 70.0, 80.0],
        "acc_lo": [40.0, 60.0, 70.0], "acc_hi": [60.0, 80.0, 90.0],
    })
    ft = pd.DataFrame({"model": ["m"], "dataset": ["d"], "k": [2], "optimizer": ["gd"], "subset": ["all"], "acc": [75.0]})
    table = finetune_report.comparison(icl, ft)
    assert len(table) == 2 and np.isnan(table.set_index("k").loc[4, "gd/all"])
    assert "n.c." in finetune_report.comparison_table(table)
    assert finetune_report.comparison_macros(table)["AccFtMDKFourGdAll"] == "n.c."
    counts = pd.DataFrame({"model": ["m"], "optimizer": ["gd"], "subset": ["all"], "settings": [2], "compared": [1]})
    text = finetune_report.comparison_summary(table, counts)
    assert "in 1 of the 2 settings" in text and "ICL averages 70.0\\% and fine-tuning 75.0\\%" in text
    assert numbers_per_sentence(text) == [2, 3] and "tab:icl_vs_ft" in text


def test_comparison_sentence_counts_settings_from_the_convergence_table():
    """In the pipeline the ICL side holds only settings with a fine-tuned twin (matched_icl), so the comparison
    table never shows an n.c. row; the counts (every lr tried) still say how many settings were left out."""
    icl = pd.DataFrame({"model": "m", "dataset": "d", "method": "icl", "k": [0, 2], "acc": [50.0, 70.0],
                        "acc_lo": [40.0, 60.0], "acc_hi": [60.0, 80.0]})
    ft = pd.DataFrame({"model": ["m"], "dataset": ["d"], "k": [2], "optimizer": ["gd"], "subset": ["all"], "acc": [55.0]})
    counts = pd.DataFrame({"model": "m", "optimizer": ["gd", "adam"], "subset": "all", "settings": [16, 16],
                           "compared": [14, 0]})
    text = finetune_report.comparison_summary(finetune_report.comparison(icl, ft), counts)
    assert "(gd/all) learned its demonstrations in 14 of the 16 settings" in text
    assert "(adam/all) learned its demonstrations in 0 of the 16 settings" in text  # no column, still a sentence
    assert "On the 1 (dataset, $k$) settings compared, ICL averages 70.0" in text
    assert numbers_per_sentence(text) == [2, 2, 3]  # adam/all (first): counts only, nothing compared


def test_convergence_counts_macros_and_sentence():
    conv = pd.DataFrame({
        "model": "m", "dataset": "d", "k": [1, 2, 4], "optimizer": "gd", "subset": "all", "seed": 0, "order": 0,
        "n_converged": [2, 1, 0], "n_not_converged": [0, 0, 1], "n_diverged": [0, 1, 1], "n_lrs": 2,
        "converged": [True, True, False], "lr": [1e-3, 1e-3, np.nan], "epochs": [4.0, 8.0, np.nan],
        "final_loss": [0.1, 0.15, np.nan],
    })
    counts = finetune_report.convergence_counts(conv)
    row = counts.iloc[0]
    assert (row["settings"], row["compared"], row["runs"], row["n_diverged"], row["median_epochs"]) == (3, 2, 6, 2, 6.0)
    macros = finetune_report.convergence_macros(counts)
    assert macros["FtConvergedMGdAll"] == "2" and macros["FtSettingsMGdAll"] == "3"
    assert macros["NFinetuneCompared"] == "2" and macros["NFinetuneTotal"] == "3"
    grid = {"target_loss": 0.2, "max_epochs": 25, "blowup": 3.0, "diverge_patience": 3}
    text = finetune_report.convergence_summary(counts, grid)
    assert "below 0.20 nats" in text and "converged in 2 of 3 settings, in a median of 6 epochs" in text
    assert "exceeds 3.0 times its start" in text and "3 epochs in a row" in text
    assert numbers_per_sentence(text) == [2, 2, 3] and "tab:ft_convergence" in text
    tex = finetune_report.convergence_table(counts)  # how the runs ended: the counts the sentence leaves out
    assert "\\label{tab:ft_convergence}" in tex and "gd/all & 2 / 3 & 6 & 3 & 2 & 1 & 6 \\\\" in tex


def test_comparison_and_sentences():
    icl = pd.DataFrame({
        "model": "m", "dataset": "d", "method": "icl", "k": [0, 2], "acc": [50.0, 70.0],
        "acc_lo": [40.0, 60.0], "acc_hi": [60.0, 80.0],
    })
    ft = pd.DataFrame({"model": ["m"], "dataset": ["d"], "k": [2], "optimizer": ["gd"], "subset": ["all"], "acc": [55.0]})
    table = finetune_report.comparison(icl, ft)
    row = table.iloc[0]
    assert (row["zero_shot"], row["icl"], row["gd/all"]) == (50.0, 70.0, 55.0)
    counts = pd.DataFrame({"model": ["m"], "optimizer": ["gd"], "subset": ["all"], "settings": [1], "compared": [1]})
    text = finetune_report.comparison_summary(table, counts)
    assert "ICL averages 70.0\\% and fine-tuning 55.0\\%" in text
    assert "learned its demonstrations in 1 of the 1" in text and numbers_per_sentence(text) == [2, 3]
    macros = finetune_report.comparison_macros(table)
    assert macros["AccFtMDKTwoGdAll"] == "55.0" and macros["NFinetuneSettings"] == "1"
    assert "gd/all" in finetune_report.comparison_table(table)


def test_no_learned_run_anywhere_shows_icl_alone():
    """When no fine-tuning run learned its demonstrations the accuracy table is empty but keeps its columns,
    and the comparison shows ICL with no variant to compare (config/paper_tiny.yaml's tiny models)."""
    from iclgd.core.metrics import accuracy_table

    columns = ["model", "dataset", "method", "k", "optimizer", "subset", "lr", "epoch", "uid", "seed", "pred_index",
               "label_index", "full_correct"]
    empty = accuracy_table(pd.DataFrame(columns=columns), n_boot=10, ci=0.95, seed=0)
    assert empty.empty and {"model", "acc", "acc_lo", "n_seeds"} <= set(empty.columns)
    icl = pd.DataFrame({"model": "m", "dataset": "d", "method": "icl", "k": [0, 2], "acc": [50.0, 70.0],
                        "acc_lo": [40.0, 60.0], "acc_hi": [60.0, 80.0]})
    ft = pd.DataFrame(columns=["model", "dataset", "k", "optimizer", "subset", "acc"])
    table = finetune_report.comparison(icl, ft)
    assert table["icl"].tolist() == [70.0] and not [c for c in table.columns if "/" in c]
    assert "tab:icl_vs_ft" in finetune_report.comparison_table(table)


def test_matched_icl_keeps_twins_and_zero_shot():
    icl = pd.DataFrame({"model": "m", "dataset": "d", "k": [0, 2, 2, 4], "seed": [0, 0, 1, 0], "uid": 1})
    ft = pd.DataFrame({"model": "m", "dataset": "d", "k": [2, 4], "seed": [0, 0]})
    got = finetune_report.matched_icl(icl, ft)
    assert sorted(zip(got["k"], got["seed"])) == [(0, 0), (2, 0), (4, 0)]


def test_many_variants_go_one_per_row_not_past_the_margin():
    """config/paper.yaml's 3 optimizers x 4 subsets: one row per variant (a longtable when long), same numbers."""
    icl = pd.DataFrame({"model": "m", "dataset": "d", "method": "icl", "k": [0, 2], "acc": [50.0, 70.0],
                        "acc_lo": [40.0, 60.0], "acc_hi": [60.0, 80.0]})
    variants = [(o, s) for o in ("gd", "sgd", "adam") for s in ("all", "kv", "v_mid", "v_deep")]
    ft = pd.DataFrame([{"model": "m", "dataset": "d", "k": 2, "optimizer": o, "subset": s, "acc": 10.0 + i}
                       for i, (o, s) in enumerate(variants)])
    tex = finetune_report.comparison_table(finetune_report.comparison(icl, ft))
    head, body = tex.split("\\midrule", 1)
    assert "FT variant" in head and "gd/all" not in head
    assert body.count("70.0 [60.0, 80.0]") == 12 and "gd/v\\_deep & 13.0" in body and "adam/v\\_deep & 21.0" in body


def test_icl_accuracy_on_compared_and_not_converged_settings():
    """ICL per prompt set (label-restricted, k >= 1), averaged separately over the settings a variant learned
    and those it did not (n.c.), so a reader sees whether leaving them out flatters either side."""
    correct = {0: [1, 0], 2: [1, 0], 4: [1, 1], 8: [1, 1, 1, 0, 1, 0, 1, 0, 1, 1]}  # k -> per query: 50, 50, 100, 70 %
    icl = pd.concat([
        pd.DataFrame({"model": "m", "dataset": "d", "method": "icl", "k": k, "seed": 0, "order": 0,
                      "uid": range(len(c)), "label_index": 1, "pred_index": c})
        for k, c in correct.items()
    ], ignore_index=True)
    setting = {"model": "m", "dataset": "d", "seed": 0, "order": 0}
    conv = pd.DataFrame([setting | {"k": k, "optimizer": o, "subset": "all", "converged": ok}
                         for o, oks in (("gd", (True, False, True)), ("adam", (True, True, True)))
                         for k, ok in zip((2, 4, 8), oks)])
    nc = finetune_report.nc_icl_accuracy(icl, conv).set_index("optimizer")
    assert nc.loc["gd", ["n_compared", "icl_compared", "n_nc", "icl_nc"]].tolist() == [2, 60.0, 1, 100.0]
    assert nc.loc["adam", "n_nc"] == 0 and np.isnan(nc.loc["adam", "icl_nc"])
    nc = nc.reset_index()
    macros = finetune_report.nc_macros(nc)
    assert macros["IclAccComparedMGdAll"] == "60.0" and macros["IclAccNcMGdAll"] == "100.0"
    assert macros["FtNcMGdAll"] == "1" and macros["IclAccNcMAdamAll"] == "--"
    tex = finetune_report.nc_table(nc)
    assert "tab:ft_nc_icl" in tex and "gd/all & 2 & 60.0 & 1 & 100.0" in tex
    text = finetune_report.nc_summary(nc)
    assert "(n.c.: 1 setting), ICL averages 100.0\\%, against 60.0\\% on the compared ones" in text
    assert numbers_per_sentence(text) == [3] and "tab:ft_nc_icl" in text
    assert "adam" not in text  # nothing was left out there



"""ICL vs fine-tuning tables: lr selection applied to test records, comparison on hand-made accuracies."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iclgd.icl_vs_gd import finetune_report


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
    text = finetune_report.comparison_summary(table)
    assert "in 1 of 2 (dataset, $k$) settings" in text and "ICL averages 70.0" in text and "ahead in 0 of them" in text


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
    text = finetune_report.convergence_summary(counts, {"target_loss": 0.2, "max_epochs": 25})
    assert "below 0.20 nats" in text and "converged in 2 of 3 settings" in text and "2 diverged" in text


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
    assert "learned its demonstrations in 1 of 1" in finetune_report.comparison_summary(table)
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

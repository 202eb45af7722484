"""compare_report: ICL vs the dev-selected GD model on the same examples, and the generated text."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from iclgd.compare import report as compare_report
from text_support import numbers_per_sentence




def rows(method: str, k: int, top: list[list[int]], lr: float = 0.0, epoch: int = 0, uids=(0, 1), labels=(0, 1),
         preds=(0, 1), optimizer="none", subset="none") -> pd.DataFrame:
    n = len(uids)
    return pd.DataFrame({
        "model": "m", "dataset": "d", "method": method, "k": k, "seed": 0, "order": 0, "optimizer": optimizer,
        "subset": subset, "lr": lr, "epoch": epoch, "uid": list(uids), "label": "x", "label_index": list(labels),
        "pred_index": list(preds), "label_logprobs": [np.log([0.6, 0.4]) if p == 0 else np.log([0.3, 0.7]) for p in preds],
        "argmax_id": [t[0] for t in top], "argmax_token": "t", "full_correct": [p == y for p, y in zip(preds, labels)],
        "top10_ids": [np.array(t) for t in top], "top10_probs": [np.full(10, 0.05)] * n, "n_tokens": 5,
    })


TOP_A = list(range(10))
TOP_B = list(range(7, 17))  # shares 7, 8, 9 with TOP_A


def test_examples_compare_icl_with_the_selected_lr_only():
    icl = pd.concat([rows("icl", 0, [TOP_A, TOP_A]), rows("icl", 2, [TOP_A, TOP_A])])
    ft = pd.concat([
        rows("finetune", 2, [TOP_B, TOP_B], lr=1e-3, epoch=5, optimizer="gd", subset="all"),
        rows("finetune", 2, [TOP_A, TOP_A], lr=1e-4, epoch=5, optimizer="gd", subset="all"),
    ])
    # dev: lr 1e-3 right on both dev examples, lr 1e-4 wrong -> 1e-3 (overlap 0.3) must be the one compared
    dev = pd.concat([
        rows("finetune", 2, [TOP_A, TOP_A], lr=1e-3, epoch=5, uids=(50, 51), optimizer="gd", subset="all"),
        rows("finetune", 2, [TOP_A, TOP_A], lr=1e-4, epoch=5, uids=(50, 51), preds=(1, 0), optimizer="gd", subset="all"),
    ])
    examples = compare_report.icl_gd_examples(icl, ft, dev)
    assert examples["token_overlap"].tolist() == pytest.approx([0.3, 0.3])
    table = compare_report.summary(examples)
    assert len(table) == 1 and table["lr"].iloc[0] == pytest.approx(1e-3)
    text = compare_report.summary_tex(examples)
    assert "share 0.30 of their tokens" in text and "\\texttt{m}" in text
    assert "overlap cosine 1.00" in text and "zero-shot is --" in text and "tab:compare" in text
    assert numbers_per_sentence(text) == [2]  # no permuted reference: overlap, overlap cosine (shift cosine undefined)
    assert "tab:compare" in compare_report.table_tex(table)


def test_icl_is_compared_with_its_permuted_order_beside_gd():
    icl = pd.concat([rows("icl", 0, [TOP_A, TOP_A]), rows("icl", 2, [TOP_A, TOP_A])])
    ft = rows("finetune", 2, [TOP_B, TOP_B], lr=1e-3, epoch=5, optimizer="gd", subset="all")
    dev = rows("finetune", 2, [TOP_A, TOP_A], lr=1e-3, epoch=5, uids=(50, 51), optimizer="gd", subset="all")
    shifted = list(range(5, 15))  # shares 5..9 with TOP_A: overlap 0.5
    permuted = rows("icl", 2, [shifted, TOP_A]).assign(order=1)
    examples = compare_report.icl_gd_examples(icl, ft, dev, permuted)
    gap = compare_report.permutation_gap(examples)
    assert gap["permuted"].tolist() == pytest.approx([0.5, 1.0])
    assert gap["gd"].tolist() == pytest.approx([0.3, 0.3])
    assert gap["gap"].tolist() == pytest.approx([0.2, 0.7])
    table = compare_report.summary(examples)
    assert sorted(table["method"]) == ["finetune", "icl_permuted"]
    tex = compare_report.table_tex(table)
    assert "0.30 / 0.75" in tex  # overlap@10 GD / permuted on the same row
    m = compare_report.macros(table, examples)
    assert m["CompareNSettings"] == "1"
    assert any(k.startswith("OverlapPerm") and v == "0.75" for k, v in m.items())
    text = compare_report.summary_tex(examples)
    assert "with itself reordered" in text and "share 0.30 of their tokens" in text
    assert "shares 0.75 of its top-10 tokens with itself reordered against 0.30 with GD" in text
    assert numbers_per_sentence(text) == [3]  # the cosines moved to Table~\ref{tab:compare}
    # no permuted records (N = 1 only, or permuted_orders: 0): the table shows -- and no reference macro
    plain = compare_report.icl_gd_examples(icl, ft, dev, permuted.iloc[:0])
    assert "0.30 / --" in compare_report.table_tex(compare_report.summary(plain))
    assert compare_report.permutation_gap(plain).empty


def test_control_table_puts_the_untrained_copy_beside_its_model():
    def examples_for(model: str, gd_top: list[int]) -> pd.DataFrame:
        icl = pd.concat([rows("icl", 0, [TOP_A, TOP_A]), rows("icl", 2, [TOP_A, TOP_A])]).assign(model=model)
        ft = rows("finetune", 2, [gd_top, gd_top], lr=1e-3, epoch=5, optimizer="gd", subset="all").assign(model=model)
        dev = rows("finetune", 2, [TOP_A, TOP_A], lr=1e-3, epoch=5, uids=(50, 51), optimizer="gd",
                   subset="all").assign(model=model)
        perm = rows("icl", 2, [TOP_A, TOP_A]).assign(order=1, model=model)
        return compare_report.icl_gd_examples(icl, ft, dev, perm)

    examples = pd.concat([examples_for("m", TOP_B), examples_for("m-untrained", TOP_A)], ignore_index=True)
    table = compare_report.control_table(examples, {"m-untrained": "m"})
    assert table[["side", "model"]].values.tolist() == [["trained", "m"], ["untrained", "m-untrained"]]
    assert table["token_overlap"].tolist() == pytest.approx([0.3, 1.0])
    assert table["overlap_perm"].tolist() == pytest.approx([1.0, 1.0])
    tex = compare_report.control_tex(table)
    assert "tab:control" in tex and "untrained" in tex
    assert "overlap of ICL and GD is 0.30 with the trained weights and 1.00 with random ones" in tex
    assert numbers_per_sentence(tex.split("\\begin{table")[0]) == [2] and "\\ref{tab:control}" in tex
    macros = compare_report.control_macros(table)
    assert sorted(v for k, v in macros.items() if k.startswith("ControlOverlapT") or k.startswith("ControlOverlapU")) == ["0.30", "1.00"]
    assert "no untrained control" in compare_report.control_tex(compare_report.control_table(examples, {}))


def test_tables_average_gd_and_the_permuted_reference_over_the_same_queries():
    """Rule icl scores the permuted copy on the first icl.permuted.n_queries only: every column of tab:compare and
    tab:control averages over those queries where they exist (N >= 2), over all queries where none does (N = 1)."""
    uids = (0, 1, 2)
    icl = pd.concat([rows("icl", 0, [TOP_A] * 3, uids=uids, labels=(0, 1, 0), preds=(0, 1, 0)),
                     rows("icl", 1, [TOP_A] * 3, uids=uids, labels=(0, 1, 0), preds=(0, 1, 0)),
                     rows("icl", 2, [TOP_A] * 3, uids=uids, labels=(0, 1, 0), preds=(0, 1, 0))])
    gd = dict(lr=1e-3, epoch=5, optimizer="gd", subset="all")
    ft = pd.concat([rows("finetune", k, [TOP_B, TOP_A, TOP_A], uids=uids, labels=(0, 1, 0), preds=(0, 1, 1), **gd)
                    for k in (1, 2)])  # overlap 0.3 on uid 0, 1.0 on uids 1 and 2; uid 2 wrong
    dev = pd.concat([rows("finetune", k, [TOP_A, TOP_A], uids=(50, 51), **gd) for k in (1, 2)])
    permuted = rows("icl", 2, [TOP_A], uids=(0,), labels=(0,), preds=(0,)).assign(order=1)  # first query only
    examples = compare_report.icl_gd_examples(icl, ft, dev, permuted)
    table = compare_report.summary(examples)
    gd_rows = table[table["method"] == "finetune"].set_index("k")
    assert gd_rows.loc[2, "n_examples"] == 1 and gd_rows.loc[2, "token_overlap"] == pytest.approx(0.3)
    assert gd_rows.loc[2, "acc_full_other"] == 1.0  # uid 2, wrong and without a reference, is left out
    assert gd_rows.loc[1, "n_examples"] == 3 and gd_rows.loc[1, "token_overlap"] == pytest.approx(2.3 / 3)  # N = 1
    tex = compare_report.table_tex(table)
    assert "0.30 / 1.00" in tex and "permuted reference" in tex
    control = compare_report.control_table(pd.concat([examples, examples.assign(model="m-untrained")]),
                                           {"m-untrained": "m"})
    assert control["token_overlap"].tolist() == pytest.approx([(0.3 + 2.3) / 4] * 2)  # 1 query at N = 2, 3 at N = 1
    assert "permuted reference" in compare_report.control_tex(control)

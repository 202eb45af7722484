"""compare_report: ICL vs the dev-selected GD model on the same examples, and the generated text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iclgd import compare_report


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
    assert "with itself reordered" in compare_report.summary_tex(examples)
    # no permuted records (N = 1 only, or permuted_orders: 0): the table shows -- and no reference macro
    plain = compare_report.icl_gd_examples(icl, ft, dev, permuted.iloc[:0])
    assert "0.30 / --" in compare_report.table_tex(compare_report.summary(plain))
    assert compare_report.permutation_gap(plain).empty

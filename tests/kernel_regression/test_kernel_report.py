"""Kernel-regression stage: hand-built inputs for the tables, macros and reductions, and one run of
`run_kernel` on the tiny Llama (shapes, splits, consistency with the library's pieces)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from iclgd.kernel_regression import kernel, kernel_report

torch.set_num_threads(1)


def summary_rows() -> pd.DataFrame:
    base = {c: float("nan") for c in kernel_report.SUMMARY_COLUMNS}
    rows = [
        {**base, "model": "m-b", "dataset": "d_2", "n_queries": 10, "n_eval": 3, "best_layer": 4, "best_head": 1,
         "icl_eval_acc": 0.5, "icl_acc": 0.6, "eval_agreement": 0.75, "eval_accuracy": 0.6, "minilm_kr_eval_acc": 0.7,
         "hidden_kr_eval_acc": 0.25, "best_head_label_mass": 0.9, "best_head_input_mass": 0.05,
         "eval_agreement_lo": 0.5, "eval_agreement_hi": 1.0, "eval_const_agreement": 0.5, "eval_agreement_p": 0.0004,
         "knn_n": 3, "knn_acc": 0.8, "random_acc": 0.5, "knn_diff": 0.3, "knn_diff_lo": -0.1, "knn_diff_hi": 0.6,
         "knn_p": 0.25, "knn_head_agreement": 0.9, "random_head_agreement": 0.75,
         "symbols": "^ ~", "sym_icl_acc": 0.4, "sym_diff": -0.2, "sym_diff_lo": -0.5, "sym_diff_hi": 0.0,
         "sym_p": 0.0312, "sym_best_layer": 2, "sym_best_head": 3, "sym_eval_agreement": 0.66,
         "word_head_sym_eval_agreement": 0.33},
        {**base, "model": "m-a", "dataset": "d_1", "n_queries": 10, "n_eval": 3, "best_layer": 0, "best_head": 7,
         "icl_eval_acc": 0.8, "icl_acc": 0.7, "eval_agreement": 1.0, "eval_accuracy": 0.9, "minilm_kr_eval_acc": 0.5,
         "hidden_kr_eval_acc": float("nan"), "best_head_label_mass": 0.2, "best_head_input_mass": 0.3,
         "eval_agreement_lo": 1.0, "eval_agreement_hi": 1.0, "eval_const_agreement": 0.9, "eval_agreement_p": 0.3,
         "symbols": ""},
    ]
    return pd.DataFrame(rows)


def test_settings_fill_defaults_and_reject_unknown_keys():
    cfg = kernel_report.settings({"models": ["x"], "datasets": ["sst2"], "n_demos": 3})
    assert cfg["n_demos"] == 3 and cfg["select_fraction"] == 0.7 and "models" not in cfg
    with pytest.raises(kernel.KernelError, match="n_demo"):
        kernel_report.settings({"n_demo": 3})


def test_assign_sets_round_robin():
    assert kernel_report.assign_sets(5, 2).tolist() == [0, 1, 0, 1, 0]
    assert kernel_report.assign_sets(3, 1).tolist() == [0, 0, 0]


def test_mean_profile_averages_queries_and_demos():
    prof = np.zeros((2, 1, 2, 3, 4), dtype=np.float32)  # (Q, L, H, n, P)
    prof[0, 0, 1, :, 2] = 3.0  # query 0, head 1, position 2 -> mean over 2 queries = 1.5
    prof[1, 0, 0, 0, 0] = 6.0  # one demo of three, one query of two -> 1.0
    frame = kernel_report.mean_profile(prof)
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
    mass = np.zeros((4, 1, 2, len(kernel.MASS_PARTS)))
    mass[..., 0] = 0.25
    mass[..., 1] = 0.75
    table = kernel_report.head_table(a, labels, pred, gold, 2, np.array([0, 1]), np.array([2, 3]), mass,
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
    table = kernel_report.probe_table(keys, keys, y, y, offsets, 0.01, 0)
    assert set(table["target"]) == {"key->prediction", "value->label"} and len(table) == 2 * 2 * 1
    acc = table[table["target"] == "key->prediction"].set_index("offset")["test_accuracy"]
    assert acc[0] > 0.95 and acc[-1] < 0.8


def test_kernel_table_layout_and_escaping():
    tex = kernel_report.kernel_table_tex(summary_rows())
    main, phen = tex.split("\\end{table}")[:2]
    assert "\\label{tab:kernel}" in main and "\\texttt{d\\_2}" in main
    body = main.split("\\midrule")[1]
    assert body.index("m-a") < body.index("m-b")  # sorted by model
    # n, ICL acc, head, agreement, constant, p, rec. acc, KR MiniLM, KR hidden
    assert "& 3 & 0.500 & 4.1 & 0.750 & 0.500 & $<$0.001 & 0.600 & 0.700 & 0.250 \\\\" in body
    assert "& 3 & 0.800 & 0.7 & 1.000 & 0.900 & 0.300 & 0.900 & 0.500 & -- \\\\" in body  # NaN is a dash
    # phenomena: only the run where the extras ran; symbols escaped for LaTeX
    assert "\\label{tab:kernel_phenomena}" in phen
    pbody = phen.split("\\midrule")[1]
    assert "m-a" not in pbody and "m-b" in pbody
    assert ("& 3 & 0.500 & 0.800 & +0.30 [-0.10, 0.60] & 0.250 & 0.750 & 0.900 & "
            "\\texttt{\\textasciicircum{} \\textasciitilde{}} & 0.600 & 0.400 & -0.20 [-0.50, 0.00] & 0.031 & 0.330 & "
            "2.3: 0.660 \\\\") in pbody


def test_phenomena_table_when_no_extras_ran():
    rows = summary_rows().iloc[[1]]
    tex = kernel_report.kernel_table_tex(rows)
    assert "\\label{tab:kernel_phenomena}" in tex and "(none)" in tex.split("tab:kernel_phenomena")[1]


def test_summary_sentence_and_macros():
    summary = summary_rows()
    text = kernel_report.kernel_summary(summary)
    assert text.startswith("% Generated by rule kernel_paper_numbers.")
    assert "head 4.1 reproduces the ICL prediction on 0.750 of the 3 held-out queries" in text
    assert "binomial $p < 0.001$" in text and "binomial $p = 0.300$" in text
    assert "ICL accuracy is 0.800 against 0.500 with random ones (difference +0.30 [-0.10, 0.60], McNemar $p = 0.250$)" in text
    assert "ICL accuracy is 0.400 against 0.600 on all 10 queries" in text and "(2.3) on 0.660" in text
    assert text.count("nearest training rows") == 1 and text.count("in place of the label words") == 1
    assert "more accurate than MiniLM kernel regression in 1 of 2" in text and "$p < 0.05$ in 1 of 2" in text
    macros = kernel_report.kernel_macros(summary, {"n_demos": 16, "select_fraction": 0.7, "n_train_queries": 52,
                                                   "symbols": ["^", "~"], "extras_datasets": ["d_2"]})
    assert macros["KernelNDemos"] == "16" and macros["KernelSelectPercent"] == "70"
    assert macros["KernelMBDTwoBestHead"] == "4.1" and macros["KernelMADOneEvalAgreement"] == "1.000"
    assert macros["KernelNTrainQueries"] == "52" and macros["KernelMBDTwoKnnAcc"] == "0.800"
    assert macros["KernelMBDTwoKnnP"] == "0.250" and macros["KernelMADOneKnnAcc"] == "--"
    assert macros["KernelSymbols"] == "\\texttt{\\textasciicircum{}}, \\texttt{\\textasciitilde{}}"
    assert macros["KernelExtrasDatasets"] == "\\texttt{d\\_2}" and macros["KernelNEvalMin"] == "3"
    assert all(k.isalpha() for k in macros)


def test_settings_check_extras_datasets():
    with pytest.raises(kernel.KernelError, match="extras_datasets"):
        kernel_report.settings({"datasets": ["sst2"], "extras_datasets": ["rte"]})
    assert kernel_report.settings({"datasets": ["sst2", "rte"], "extras_datasets": ["rte"]})["extras_datasets"] == ["rte"]
    assert kernel_report.extras_on({"extras_datasets": []}, "x") and not kernel_report.extras_on(
        {"extras_datasets": ["y"]}, "x")


def test_eval_agreement_stats_hand_case():
    # ICL predicts class 1 on 3 of 4 selection queries -> constant vote 1; on the held-out part pred = 1 in 2 of 10
    pred_sel, pred_ev = np.array([1, 1, 0, 1]), np.array([1, 1] + [0] * 8)
    agree = np.array([1] * 9 + [0])
    res = kernel_report.eval_agreement_stats(agree, pred_ev, pred_sel, 0)
    assert res["eval_const_agreement"] == pytest.approx(0.2)
    from scipy.stats import binom

    assert res["eval_agreement_p"] == pytest.approx(binom.sf(8, 10, 0.2))  # P(X >= 9)
    assert res["eval_agreement_lo"] <= 0.9 <= res["eval_agreement_hi"]
    assert kernel_report.eval_agreement_stats(agree, np.ones(10, int), pred_sel, 0)["eval_agreement_p"] == 1.0


def test_zero_shot_matches_library_pieces(tiny):
    model, tok = tiny
    texts = ["Review: a gem\nSentiment:", "Review: dull, flat and long\nSentiment:", "x"]
    words = ["negative", "positive"]
    from iclgd.core import forward

    p, hid = kernel_report.zero_shot(model, tok, texts, forward.label_token_ids(tok, words), -1, batch_size=2)
    np.testing.assert_allclose(p, kernel.label_distribution(model, tok, texts, words), atol=1e-4)
    np.testing.assert_allclose(hid, kernel.hidden_features(model, tok, texts), atol=1e-4)


def tiny_data(n_train: int = 24):
    spec = {"name": "toy", "template": "Review: {text}\nSentiment:", "fields": ["text"],
            "verbalizer": {"neg": "negative", "pos": "positive"}, "classes": ["neg", "pos"]}
    words = ["good", "bad", "fine", "awful", "great", "dull", "nice", "poor", "superb", "flat", "ok", "meh"]
    train = pd.DataFrame({"uid": range(n_train), "label": ["pos", "neg"] * (n_train // 2),
                          "text": [f"{words[i % len(words)]} {i}" for i in range(n_train)]})
    test = pd.DataFrame({"uid": range(100, 110), "label": ["neg", "pos"] * 5, "text": [f"film {i}" for i in range(10)]})
    return spec, train, test


def test_run_kernel_on_tiny_model(tiny):
    model, tok = tiny
    spec, train, test = tiny_data(12)
    cfg = {"n_demos": 4, "n_prompt_sets": 2, "probe_offsets": [-1, 0, 1], "n_test": 8}
    out = kernel_report.run_kernel(model, tok, train, test, spec, cfg, "tiny")
    s = out["summary"].iloc[0]
    assert list(out["summary"].columns) == kernel_report.SUMMARY_COLUMNS
    assert (s["n_queries"], s["n_select"], s["n_eval"], s["n_layers"], s["n_heads"]) == (8, 6, 2, 2, 4)
    assert (s["n_test_queries"], s["n_train_queries"], s["n_eval_test"]) == (8, 0, 2)
    heads = out["heads"]
    assert len(heads) == 8 and heads[[f"mass_{p}" for p in kernel.MASS_PARTS]].sum(axis=1).round(4).eq(1).all()
    best = heads[(heads["layer"] == s["best_layer"]) & (heads["head"] == s["best_head"])].iloc[0]
    assert best["select_agreement"] == heads["select_agreement"].max() == s["select_agreement"]
    assert best["eval_agreement"] == s["eval_agreement"]
    assert s["eval_agreement_lo"] <= s["eval_agreement"] <= s["eval_agreement_hi"]
    assert len(out["profile"]) == 2 * 4 * kernel.PROFILE_LEN
    assert set(out["probes"]["offset"]) == {-1, 0, 1}
    assert 0 <= s["minilm_kr_acc"] <= 1 and 0 <= s["hidden_kr_acc"] <= 1
    assert np.isnan(s["knn_acc"]) and np.isnan(s["sym_icl_acc"])  # extras off by default


def test_run_kernel_extras_on_tiny_model(tiny):
    """Extra training queries, kNN demonstrations and symbols: consistent with the library pieces."""
    model, tok = tiny
    spec, train, test = tiny_data(24)
    cfg = {"n_demos": 4, "n_prompt_sets": 2, "probe_offsets": [0], "n_test": 4, "n_train_queries": 6,
           "knn": True, "knn_pool": 6, "symbols": ["^", "~", "|"]}
    out = kernel_report.run_kernel(model, tok, train, test, spec, cfg, "tiny")
    s = out["summary"].iloc[0]
    assert (s["n_queries"], s["n_test_queries"], s["n_train_queries"], s["n_eval"]) == (10, 4, 6, 3)
    assert s["knn_n"] == s["n_eval"] and 0 <= s["knn_acc"] <= 1
    assert s["random_acc"] == pytest.approx(s["icl_eval_acc"])  # the same held-out queries
    assert s["knn_diff"] == pytest.approx(s["knn_acc"] - s["random_acc"])
    assert s["random_head_agreement"] == s["eval_agreement"] and 0 <= s["knn_head_agreement"] <= 1
    assert s["symbols"] == "^ ~" and s["sym_diff"] == pytest.approx(s["sym_icl_acc"] - s["icl_acc"])
    assert 0 <= s["sym_eval_agreement"] <= 1 and 0 <= s["word_head_sym_eval_agreement"] <= 1
    # extras restricted to another dataset: the same main numbers, no extras
    off = kernel_report.run_kernel(model, tok, train, test, spec, {**cfg, "extras_datasets": ["other"]}, "tiny")
    o = off["summary"].iloc[0]
    assert np.isnan(o["knn_acc"]) and np.isnan(o["sym_icl_acc"])
    assert (o["best_layer"], o["best_head"], o["eval_agreement"]) == (s["best_layer"], s["best_head"], s["eval_agreement"])

"""The kernel-regression run on the tiny Llama (iclgd.kernel.run): `run_kernel`'s shapes, splits, and its held-out
numbers against an independent recomputation (the zero-shot forward it calls: test_analyses.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from iclgd.core import forward, prompts
from iclgd.kernel.attention import MASS_PARTS, PROFILE_LEN, capture
from iclgd.kernel.heads import reconstruct, split_indices
from iclgd.kernel.prompt_sets import draw_train_queries
from iclgd.kernel.run import SUMMARY_COLUMNS, assign_sets, extras_on, run_kernel

torch.set_num_threads(1)


def test_assign_sets_round_robin():
    assert assign_sets(5, 2).tolist() == [0, 1, 0, 1, 0]
    assert assign_sets(3, 1).tolist() == [0, 0, 0]


def test_extras_on_empty_means_every_dataset():
    assert extras_on({"extras_datasets": []}, "x") and extras_on({"extras_datasets": ["x"]}, "x")
    assert not extras_on({"extras_datasets": ["y"]}, "x")


def tiny_data(n_train: int = 24):
    spec = {"name": "toy", "template": "Review: {text}\nSentiment:", "fields": ["text"],
            "verbalizer": {"neg": "negative", "pos": "positive"}, "classes": ["neg", "pos"]}
    words = ["good", "bad", "fine", "awful", "great", "dull", "nice", "poor", "superb", "flat", "ok", "meh"]
    train = pd.DataFrame({"uid": range(n_train), "label": ["pos", "neg"] * (n_train // 2),
                          "text": [f"{words[i % len(words)]} {i}" for i in range(n_train)]})
    test = pd.DataFrame({"uid": range(100, 110), "label": ["neg", "pos"] * 5, "text": [f"film {i}" for i in range(10)]})
    return spec, train, test


def held_out_reference(model, tok, train, test, spec, cfg, layer: int, head: int):
    """ICL predictions, one head's votes and gold labels on the evaluation queries, recomputed outside
    `run_kernel`: the same demonstration sets and queries, ICL read from `forward.score_queries` (no
    attention capture) and the head's vote from a capture of each query alone."""
    seed, n_sets = cfg["seed"], cfg["n_prompt_sets"]
    test = test.iloc[: cfg["n_queries"]]
    sets = prompts.build_prompt_sets(spec["name"], spec, train, test.iloc[:0], [cfg["n_demos"]],
                                     range(seed, seed + n_sets))
    used = {d["uid"] for ps in sets for d in ps["demos"]}
    extra, _ = draw_train_queries(train, used, cfg["n_train_queries"], 0, seed)  # queries do not depend on the pool
    rows = pd.concat([test, extra], ignore_index=True).to_dict("records")
    classes = list(spec["classes"])
    label_ids = forward.label_token_ids(tok, sets[0]["label_words"])
    icl, vote, gold = [], [], []
    for j, row in enumerate(rows):
        ps, query = sets[j % n_sets], prompts.render_query(spec["template"], row)
        logp = forward.score_queries(model, tok, ps["prefix"], [query], label_ids)["label_logprobs"][0]
        icl.append(int(logp.argmax()))
        cap = capture(model, tok, ps, [query])
        vote.append(int(reconstruct(cap.a[0, layer, head], cap.demo_labels, len(classes))))
        gold.append(classes.index(row["label"]))
    _, ev = split_indices(len(rows), cfg["select_fraction"], seed)
    return np.array(icl)[ev], np.array(vote)[ev], np.array(gold)[ev]


def test_run_kernel_on_tiny_model(tiny, kernel_cfg, default_config):
    model, tok = tiny
    spec, train, test = tiny_data(12)
    cfg = {**kernel_cfg, "n_demos": 4, "n_prompt_sets": 2, "probe_offsets": [-1, 0, 1], "n_queries": 8,
           "n_train_queries": 0, "knn": False, "symbols": []}
    out = run_kernel(model, tok, train, test, spec, cfg, default_config["metrics"], "tiny")
    s = out["summary"].iloc[0]
    assert list(out["summary"].columns) == SUMMARY_COLUMNS
    assert (s["n_queries"], s["n_select"], s["n_eval"], s["n_layers"], s["n_heads"]) == (8, 6, 2, 2, 4)
    assert (s["n_test_queries"], s["n_train_queries"], s["n_eval_test"]) == (8, 0, 2)
    heads = out["heads"]
    assert len(heads) == 8 and heads[[f"mass_{p}" for p in MASS_PARTS]].sum(axis=1).round(4).eq(1).all()
    best = heads[(heads["layer"] == s["best_layer"]) & (heads["head"] == s["best_head"])].iloc[0]
    assert best["select_agreement"] == heads["select_agreement"].max() == s["select_agreement"]
    assert best["eval_agreement"] == s["eval_agreement"]
    assert s["eval_agreement_lo"] <= s["eval_agreement"] <= s["eval_agreement_hi"]
    assert len(out["profile"]) == 2 * 4 * PROFILE_LEN
    assert set(out["probes"]["offset"]) == {-1, 0, 1}
    assert 0 <= s["minilm_kr_acc"] <= 1 and 0 <= s["hidden_kr_acc"] <= 1
    assert np.isnan(s["knn_acc"]) and np.isnan(s["sym_icl_acc"])  # extras off


def test_run_kernel_extras_on_tiny_model(tiny, kernel_cfg, default_config):
    """Extra training queries, kNN demonstrations and symbols: consistent with an independent recomputation."""
    model, tok = tiny
    spec, train, test = tiny_data(24)
    cfg = {**kernel_cfg, "n_demos": 4, "n_prompt_sets": 2, "probe_offsets": [0], "n_queries": 4,
           "n_train_queries": 6, "knn": True, "knn_pool": 6, "symbols": ["^", "~", "|"], "extras_datasets": ["toy"]}
    out = run_kernel(model, tok, train, test, spec, cfg, default_config["metrics"], "tiny")
    s = out["summary"].iloc[0]
    assert (s["n_queries"], s["n_test_queries"], s["n_train_queries"], s["n_eval"]) == (10, 4, 6, 3)
    assert s["knn_n"] == s["n_eval"] and 0 <= s["knn_acc"] <= 1
    # random demonstrations = the run's own prompt sets on the held-out queries, recomputed independently
    icl, vote, gold = held_out_reference(model, tok, train, test, spec, cfg, int(s["best_layer"]), int(s["best_head"]))
    assert s["random_acc"] == pytest.approx(np.mean(icl == gold)) and s["icl_eval_acc"] == pytest.approx(s["random_acc"])
    assert s["random_head_agreement"] == pytest.approx(np.mean(vote == icl))
    assert s["random_head_accuracy"] == pytest.approx(np.mean(vote == gold))
    assert s["knn_diff"] == pytest.approx(s["knn_acc"] - s["random_acc"]) and 0 <= s["knn_head_agreement"] <= 1
    assert s["symbols"] == "^ ~" and s["sym_diff"] == pytest.approx(s["sym_icl_acc"] - s["icl_acc"])
    assert 0 <= s["sym_eval_agreement"] <= 1 and 0 <= s["word_head_sym_eval_agreement"] <= 1
    # extras restricted to another dataset: the same main numbers, no extras
    off = run_kernel(model, tok, train, test, spec, {**cfg, "extras_datasets": ["other"]}, default_config["metrics"], "tiny")
    o = off["summary"].iloc[0]
    assert np.isnan(o["knn_acc"]) and np.isnan(o["sym_icl_acc"])
    assert (o["best_layer"], o["best_head"], o["eval_agreement"]) == (s["best_layer"], s["best_head"], s["eval_agreement"])

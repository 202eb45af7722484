"""Reconstruction from kernel weights, head selection, similarity correlation and ridge probes: hand
cases, planted signals, and keys/values against the projections of a direct forward on the tiny Llama."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclgd.kernel.heads import (
    head_scores, prediction_similarity, reconstruct, select_heads, similarity_correlation, split_indices,
)
from iclgd.kernel.probes import collect_kv, probe_heads, ridge_fit, ridge_probe
from iclgd.kernel.spans import KernelError, demo_spans

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# reconstruction and head selection

LABELS = np.array([0, 1, 1])
A = np.array(
    [
        [[0.9, 0.1, 0.1], [0.3, 0.2, 0.2]],  # layer 0: -> 0 (0.9 vs 0.2), -> 1 (0.3 vs 0.4)
        [[0.5, 0.5, 0.0], [0.0, 0.0, 0.7]],  # layer 1: tie -> 0, -> 1
    ]
)


def test_reconstruct_hand_case():
    np.testing.assert_array_equal(reconstruct(A, LABELS, 2), [[0, 1], [0, 1]])
    # three classes and per-query demonstrations: query 1 relabels demo 0 as class 2
    a = np.stack([A, A])
    labels = np.array([[0, 1, 1], [2, 1, 1]])
    got = reconstruct(a, labels, 3)
    np.testing.assert_array_equal(got[0], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(got[1], [[2, 1], [1, 1]])  # tie 0.5/0.5 between 1 and 2 -> 1


def test_head_scores_hand_case():
    a = np.stack([A, A[:, :, ::-1]])  # query 1: demos reversed -> [[1,0],[1,0]] under the same labels
    # query 1 per head: L0H0 [0.1,0.1,0.9] -> 1; L0H1 [0.2,0.2,0.3] -> 1; L1H0 [0,0.5,0.5] -> 1; L1H1 [0.7,0,0] -> 0
    scores = head_scores(a, LABELS, icl_pred=np.array([0, 1]), gold=np.array([1, 1]), n_classes=2)
    np.testing.assert_allclose(scores["agreement"], [[1.0, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(scores["accuracy"], [[0.5, 1.0], [0.5, 0.5]])


def test_select_heads_finds_planted_head_on_disjoint_split():
    rng = np.random.default_rng(0)
    Q, L, H, n = 100, 3, 4, 6
    labels = rng.integers(0, 2, size=(Q, n))
    labels[:, :2] = [0, 1]  # every prompt shows both classes
    icl = rng.integers(0, 2, size=Q)
    a = rng.random((Q, L, H, n))
    # head (2, 1) puts all weight on demos whose label equals the ICL prediction
    a[:, 2, 1] = (labels == icl[:, None]) + 0.01
    gold = icl.copy()
    gold[:20] = 1 - gold[:20]
    sel = select_heads(a, labels, icl, gold, 2, select_frac=0.7, seed=3)
    assert (sel.layer, sel.head) == (2, 1)
    assert len(sel.select_idx) == 70 and len(sel.eval_idx) == 30
    assert not set(sel.select_idx) & set(sel.eval_idx)
    assert sel.select_agreement == 1.0 and sel.eval_agreement == 1.0
    assert sel.eval_accuracy == pytest.approx((icl[sel.eval_idx] == gold[sel.eval_idx]).mean())
    again = select_heads(a, labels, icl, gold, 2, select_frac=0.7, seed=3)
    np.testing.assert_array_equal(again.eval_idx, sel.eval_idx)
    other = split_indices(Q, 0.7, seed=4)[1]
    assert not np.array_equal(other, sel.eval_idx)


# ---------------------------------------------------------------------------------------------
# similarity


def test_similarity_correlation_hand_case_and_constant():
    sim = np.array([[0.1, 0.5, 0.2, 0.9], [0.3, 0.3, 0.8, 0.0]])  # (Q=2, n=4)
    attn = np.stack([2 * sim + 1, -sim, np.full_like(sim, 0.25), sim**2], axis=1)[:, None]  # (2, 1, 4, 4)
    r = similarity_correlation(attn, sim)
    assert r.shape == (1, 4)
    assert r[0, 0] == pytest.approx(1.0) and r[0, 1] == pytest.approx(-1.0)
    assert np.isnan(r[0, 2])
    assert r[0, 3] == pytest.approx(np.corrcoef(sim.ravel(), (sim**2).ravel())[0, 1])
    assert np.isnan(similarity_correlation(attn, np.full_like(sim, 0.5))).all()
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(prediction_similarity(p, p), [[1.0, 0.5], [0.5, 0.5]])


# ---------------------------------------------------------------------------------------------
# ridge probes


def test_ridge_recovers_planted_linear_signal():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12))
    w = rng.normal(size=12)
    y = X @ w + 3.0
    res = ridge_probe(X, y, lam=0.01, seed=0)
    assert res["test_r2"] > 0.99 and res["n_test"] == 90
    W, b = ridge_fit(X, y, lam=1e-8)
    np.testing.assert_allclose(W, w, atol=1e-6)
    assert b == pytest.approx(3.0, abs=1e-6)
    shuffled = ridge_probe(X, rng.permutation(y), lam=0.01, seed=0)
    assert shuffled["test_r2"] < 0.5


def test_ridge_dual_form_matches_primal():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(8, 20)), rng.normal(size=(8, 3))
    W, b = ridge_fit(X, Y, lam=0.5)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    W_primal = np.linalg.solve(Xc.T @ Xc + 0.5 * np.eye(20), Xc.T @ Yc)
    np.testing.assert_allclose(W, W_primal, atol=1e-10)
    np.testing.assert_allclose(b, Y.mean(0) - X.mean(0) @ W_primal, atol=1e-10)


def test_ridge_classifies_separable_classes():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, size=240)
    centres = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0]])
    X = centres[y] + rng.normal(scale=0.5, size=(240, 4))
    res = ridge_probe(X, y, lam=0.01, seed=0)
    assert res["train_accuracy"] == 1.0 and res["test_accuracy"] == 1.0
    chance = ridge_probe(rng.normal(size=(240, 4)), y, lam=0.01, seed=0)
    assert chance["test_accuracy"] < 0.6
    feats = np.stack([X, rng.normal(size=X.shape)], axis=1)[:, :, None, :]  # (N, O=2, H=1, d)
    grid = probe_heads(feats, y, 0.01, seed=0)
    assert grid["test_accuracy"].shape == (2, 1)
    assert grid["test_accuracy"][0, 0] == 1.0 and grid["test_accuracy"][1, 0] < 0.6


def test_collect_kv_matches_projections(tiny, make_prompt_set, kernel_cfg):
    model, tok = tiny
    ps = make_prompt_set(k=4)
    layer, offsets = 1, kernel_cfg["probe_offsets"]
    n_off = len(offsets)
    got = collect_kv(model, tok, ps, layer, offsets)
    cfg = model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    assert got["keys"].shape == (4, n_off, cfg.num_key_value_heads, hd) == got["values"].shape
    spans = demo_spans(tok, ps, ps["queries"][0]["query"])
    np.testing.assert_array_equal(got["positions"][:, offsets.index(0)], spans.y)
    block = model.model.layers[layer]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([spans.ids]), output_hidden_states=True).hidden_states[layer]
        normed = block.input_layernorm(hidden)[0]
        keys = block.self_attn.k_proj(normed).numpy()
        values = block.self_attn.v_proj(normed).numpy()
    pos = got["positions"]
    np.testing.assert_allclose(got["keys"].reshape(4, n_off, -1), keys[pos], atol=1e-5)
    np.testing.assert_allclose(got["values"].reshape(4, n_off, -1), values[pos], atol=1e-5)
    assert not block.self_attn.k_proj._forward_hooks  # hooks removed
    with pytest.raises(KernelError, match="outside"):
        collect_kv(model, tok, ps, layer, offsets=(-1000,))

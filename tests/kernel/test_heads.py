"""Reconstruction from kernel weights, head selection and similarity correlation (iclgd.kernel.heads): hand
cases and planted signals (the ridge probes: test_probes.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclgd.kernel.heads import (
    head_scores, prediction_similarity, reconstruct, select_heads, similarity_correlation, split_indices,
)

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

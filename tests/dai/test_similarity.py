"""Dai et al.'s SimAOU / SimAM and their baselines on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from iclgd.dai import similarity
from iclgd.dai.capture import DaiError


def _pad_scores(scores: np.ndarray, width: int) -> np.ndarray:
    """Left-pad right-aligned score rows (..., T) with zeros to `width` columns (as `capture` lays them out)."""
    return np.pad(scores, [(0, 0)] * (scores.ndim - 1) + [(width - scores.shape[-1], 0)])


def test_cosine_hand_case_and_zero_vector_is_undefined():
    got = similarity.cosine(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]),
                            np.array([[0.0, 2.0], [3.0, 3.0], [1.0, 0.0]]))
    np.testing.assert_allclose(got[:2], [0.0, 1.0])
    assert np.isnan(got[2])
    with pytest.raises(DaiError):
        similarity.cosine(np.ones(2), np.ones(3))


def test_simaou_hand_case_normalises_first():
    # ĥ_ZS = (1, 0); ĥ_ICL = (0, 1) (norm 2 before); ĥ_FT = (1, 1)/√2. Updates (-1, 1) and (1/√2 - 1, 1/√2):
    # the angle between them is 22.5°, so the cosine is cos(π/8), whatever the raw norms were.
    zs, icl, ft = np.array([[[3.0, 0.0]]]), np.array([[[0.0, 2.0]]]), np.array([[[5.0, 5.0]]])
    got = similarity.simaou(icl, ft, zs)
    assert got.shape == (1, 1)
    np.testing.assert_allclose(got[0, 0], np.cos(np.pi / 8))
    np.testing.assert_allclose(similarity.simaou(icl, icl * 7, zs), [[1.0]])  # same direction: 1
    assert np.isnan(similarity.simaou(zs, ft, zs)[0, 0])  # ICL did not move: undefined


def test_random_simaou_uses_a_seeded_uniform_vector():
    zs, icl = np.array([[[1.0, 0.0, 0.0]]]), np.array([[[0.0, 1.0, 0.0]]])
    u = np.random.default_rng(3).random((1, 1, 3))
    update = np.array([-1.0, 1.0, 0.0])
    expected = update @ u[0, 0] / (np.linalg.norm(update) * np.linalg.norm(u[0, 0]))
    np.testing.assert_allclose(similarity.random_simaou(icl, zs, 3), [[expected]])
    assert not np.array_equal(similarity.random_simaou(icl, zs, 3), similarity.random_simaou(icl, zs, 4))  # seeded
    # property: updates with no component along the all-ones direction are ~orthogonal to uniform noise
    rng = np.random.default_rng(0)
    zs, icl = rng.normal(size=(200, 1, 400)), rng.normal(size=(200, 1, 400))
    zs -= zs.mean(-1, keepdims=True)
    icl -= icl.mean(-1, keepdims=True)
    assert abs(np.nanmean(similarity.random_simaou(icl, zs, 1))) < 0.02


def test_simam_hand_case_mean_over_heads_and_padding_invariant():
    a = np.array([[[[1.0, 0.0], [1.0, 1.0]]]])  # (Q=1, L=1, H=2, T=2)
    b = np.array([[[[0.0, 1.0], [2.0, 2.0]]]])
    np.testing.assert_allclose(similarity.simam(a, b), [[0.5]])  # heads: 0 and 1
    np.testing.assert_allclose(similarity.simam(_pad_scores(a, 5), _pad_scores(b, 5)), [[0.5]])
    b0 = b.copy()
    b0[..., 0, :] = 0.0  # head 0 undefined: skipped, not counted as 0
    np.testing.assert_allclose(similarity.simam(a, b0), [[1.0]])


def test_per_layer_means_skip_nan():
    v = np.array([[0.2, np.nan, 0.4], [0.0, 0.5, np.nan]])
    np.testing.assert_allclose(similarity.per_layer(v), [0.1, 0.5, 0.4])

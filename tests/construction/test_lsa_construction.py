"""The von Oswald et al. construction (iclgd.construction.lsa_construction): its linear self-attention layer is
exactly one GD step from w0, on random problems of every shape, matches autograd's gradient, is invariant to
the demonstrations' order, and refuses zero demonstrations."""

from __future__ import annotations

import pytest
import torch

from iclgd.construction.lsa_construction import (
    constructed_weights,
    gd_step_prediction,
    lsa_forward,
    lsa_layer,
    make_tokens,
)

F64 = torch.float64


def _random_problem(gen: torch.Generator):
    n_x, n_y, n_ctx = (int(torch.randint(1, hi, (1,), generator=gen)) for hi in (7, 4, 12))
    lr = float(torch.rand(1, generator=gen, dtype=F64)) * 2 + 0.05
    w0 = torch.randn(n_y, n_x, generator=gen, dtype=F64)
    x_ctx = torch.randn(5, n_ctx, n_x, generator=gen, dtype=F64)
    y_ctx = torch.randn(5, n_ctx, n_y, generator=gen, dtype=F64)
    x_q = torch.randn(5, n_x, generator=gen, dtype=F64)
    return n_x, n_y, n_ctx, lr, w0, x_ctx, y_ctx, x_q


@pytest.mark.parametrize("seed", range(20))
def test_constructed_layer_is_one_gd_step(seed):
    n_x, n_y, n_ctx, lr, w0, x_ctx, y_ctx, x_q = _random_problem(torch.Generator().manual_seed(seed))
    weights = constructed_weights(n_x, n_y, lr, n_ctx, w0)
    pred = lsa_forward(make_tokens(x_ctx, y_ctx, x_q, w0), weights, n_y)
    expected = gd_step_prediction(x_ctx, y_ctx, x_q, lr, w0)
    assert pred.shape == expected.shape == (5, n_y)
    torch.testing.assert_close(pred, expected, atol=1e-5, rtol=0)
    # the full-sequence layer agrees with the query-only forward
    full = lsa_layer(make_tokens(x_ctx, y_ctx, x_q, w0), weights)
    torch.testing.assert_close(-full[:, -1, n_x:], pred, atol=1e-12, rtol=0)


def test_gd_step_matches_autograd():
    gen = torch.Generator().manual_seed(1)
    n_x, n_y, n_ctx, lr, w0, x_ctx, y_ctx, x_q = _random_problem(gen)
    w = w0.clone().requires_grad_(True)
    loss = ((x_ctx[0] @ w.T - y_ctx[0]) ** 2).sum() / (2 * n_ctx)
    (grad,) = torch.autograd.grad(loss, w)
    torch.testing.assert_close(gd_step_prediction(x_ctx[0], y_ctx[0], x_q[0], lr, w0), (w0 - lr * grad) @ x_q[0])


def test_constructed_layer_is_order_invariant():
    n_x, n_y, n_ctx, lr, w0, x_ctx, y_ctx, x_q = _random_problem(torch.Generator().manual_seed(3))
    weights = constructed_weights(n_x, n_y, lr, n_ctx, w0)
    base = lsa_forward(make_tokens(x_ctx, y_ctx, x_q, w0), weights, n_y)
    gen = torch.Generator().manual_seed(4)
    for _ in range(10):
        perm = torch.randperm(n_ctx, generator=gen)
        permuted = lsa_forward(make_tokens(x_ctx[:, perm], y_ctx[:, perm], x_q, w0), weights, n_y)
        assert (permuted - base).abs().max() <= 1e-12


def test_zero_demonstrations_raise():
    with pytest.raises(ValueError, match="P = eta/N is undefined for N = 0"):
        constructed_weights(3, 1, 0.1, 0)
    with pytest.raises(ValueError, match="undefined for N = 0"):
        gd_step_prediction(torch.zeros(0, 3), torch.zeros(0, 1), torch.zeros(3), 0.1)

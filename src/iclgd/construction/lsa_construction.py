"""Linear self-attention (LSA) as one step of gradient descent: von Oswald et al.'s construction.

Construction (von Oswald et al. 2023, "Transformers learn in-context by gradient descent", Prop. 1 and
`create_weights` in google-research/self-organising-systems): tokens e_j = (x_j, y_j), one LSA layer

    e_j <- e_j + P sum_i (W_V e_i)(W_K e_i)^T (W_Q e_j)        (keys/values from the N context tokens only)

with W_Q = W_K = [[I, 0], [0, 0]], W_V = [[0, 0], [W_0, -I]], P = [[0, 0], [0, (eta/N) I]]. The query's y-slot
becomes y_q - dW x_q with dW = -eta grad L(W_0), L = 1/(2N) sum ||W x_i - y_i||^2, so the prediction is read out
as -(y-slot of the query). For the readout to be the full one-step prediction W_1 x_q = (W_0 + dW) x_q, the
query's y-slot starts at -W_0 x_q (von Oswald et al.); with W_0 = 0 (their default) that is the usual (x_q, 0).
`iclgd.construction.lsa` trains such a layer and compares it with this construction.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

#: The four matrices of an LSA layer.
WEIGHT_NAMES = ("W_Q", "W_K", "W_V", "P")


def _check_n_ctx(n_ctx: int) -> None:
    if n_ctx <= 0:
        raise ValueError(
            f"n_ctx = {n_ctx}: the GD construction needs at least one demonstration, because its step size "
            "P = eta/N is undefined for N = 0 (Shen et al. 2023)"
        )


def constructed_weights(
    n_x: int, n_y: int, lr: float, n_ctx: int, w0: Tensor | None = None, dtype: torch.dtype = torch.float64
) -> dict[str, Tensor]:
    """von Oswald et al.'s LSA weights whose forward pass is one GD step of size `lr` from `w0` (n_y x n_x)."""
    _check_n_ctx(n_ctx)
    dim = n_x + n_y
    w0 = torch.zeros(n_y, n_x, dtype=dtype) if w0 is None else torch.as_tensor(w0, dtype=dtype)
    if w0.shape != (n_y, n_x):
        raise ValueError(f"w0 has shape {tuple(w0.shape)}, expected ({n_y}, {n_x})")
    w_qk = torch.zeros(dim, dim, dtype=dtype)
    w_qk[:n_x, :n_x] = torch.eye(n_x, dtype=dtype)
    w_v = torch.zeros(dim, dim, dtype=dtype)
    w_v[n_x:, :n_x] = w0
    w_v[n_x:, n_x:] = -torch.eye(n_y, dtype=dtype)
    proj = torch.zeros(dim, dim, dtype=dtype)
    proj[n_x:, n_x:] = (lr / n_ctx) * torch.eye(n_y, dtype=dtype)
    return {"W_Q": w_qk, "W_K": w_qk.clone(), "W_V": w_v, "P": proj}


def make_tokens(x_ctx: Tensor, y_ctx: Tensor, x_q: Tensor, w0: Tensor | None = None) -> Tensor:
    """Stack context tokens (x_i, y_i) and the query token (x_q, -W_0 x_q) into (..., N+1, n_x+n_y)."""
    n_y = y_ctx.shape[-1]
    y_q = torch.zeros(*x_q.shape[:-1], n_y, dtype=x_q.dtype) if w0 is None else -(x_q @ w0.T)
    ctx = torch.cat([x_ctx, y_ctx], dim=-1)
    query = torch.cat([x_q, y_q], dim=-1).unsqueeze(-2)
    return torch.cat([ctx, query], dim=-2)


def lsa_layer(tokens: Tensor, weights: Mapping[str, Tensor]) -> Tensor:
    """One LSA layer on every token; keys and values come from the context tokens (all but the last) only."""
    ctx = tokens[..., :-1, :]
    keys = ctx @ weights["W_K"].T
    values = ctx @ weights["W_V"].T
    queries = tokens @ weights["W_Q"].T
    scores = queries @ keys.transpose(-1, -2)  # (..., N+1, N): (W_K e_i)^T (W_Q e_j)
    return tokens + (scores @ values) @ weights["P"].T


def lsa_forward(tokens: Tensor, weights: Mapping[str, Tensor], n_y: int = 1) -> Tensor:
    """Prediction for the query (last token): minus its y-slot after one LSA layer, shape (..., n_y)."""
    ctx = tokens[..., :-1, :]
    query = tokens[..., -1:, :]
    keys = ctx @ weights["W_K"].T
    values = ctx @ weights["W_V"].T
    scores = (query @ weights["W_Q"].T) @ keys.transpose(-1, -2)  # (..., 1, N)
    updated = query + (scores @ values) @ weights["P"].T
    return -updated[..., 0, -n_y:]


def gd_step_prediction(x_ctx: Tensor, y_ctx: Tensor, x_q: Tensor, lr: float | Tensor, w0: Tensor | None = None) -> Tensor:
    """W_1 x_q after one GD step on L = 1/(2N) sum ||W x_i - y_i||^2 from W_0 (zero if None); shape (..., n_y)."""
    n_ctx = x_ctx.shape[-2]
    _check_n_ctx(n_ctx)
    if w0 is None:
        w0 = torch.zeros(y_ctx.shape[-1], x_ctx.shape[-1], dtype=x_ctx.dtype)
    resid = x_ctx @ w0.T - y_ctx  # (..., N, n_y)
    grad = resid.transpose(-1, -2) @ x_ctx / n_ctx  # (..., n_y, n_x)
    w1 = w0 - lr * grad
    return (w1 @ x_q.unsqueeze(-1)).squeeze(-1)

"""Ridge probes of key and value vectors at the demonstrations' label positions (Han et al. §5.4):
keys should encode the model's own zero-shot prediction, values the demonstration's label.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from iclgd.core.forward import forward_at
from iclgd.kernel.heads import split_indices
from iclgd.kernel.spans import KernelError, demo_spans

#: Held-out share of each probe's rows (not a config key: the paper's split).
PROBE_TEST_FRAC = 0.3


def ridge_fit(X: np.ndarray, Y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge with an unpenalised intercept: X (N, d), Y (N, t) -> W (d, t), b (t,).

    Uses the primal (d×d) or dual (N×N) system, whichever is smaller; both give the same W.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    Y2 = Y[:, None] if Y.ndim == 1 else Y
    mx, my = X.mean(axis=0), Y2.mean(axis=0)
    Xc, Yc = X - mx, Y2 - my
    n, d = Xc.shape
    if d <= n:
        W = np.linalg.solve(Xc.T @ Xc + lam * np.eye(d), Xc.T @ Yc)
    else:
        W = Xc.T @ np.linalg.solve(Xc @ Xc.T + lam * np.eye(n), Yc)
    b = my - mx @ W
    return (W[:, 0], b[0]) if Y.ndim == 1 else (W, b)


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination, averaged uniformly over target columns."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(y), -1)
    ss_res = ((y - pred) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.mean(1 - ss_res / ss_tot))


def train_test_split(n: int, test_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices from one seeded permutation."""
    test, train = split_indices(n, test_frac, seed)
    return train, test


def ridge_probe(
    X: np.ndarray,
    y: np.ndarray,
    lam: float,
    *,
    seed: int,
    test_frac: float = PROBE_TEST_FRAC,
    classify: bool | None = None,
) -> dict[str, float]:
    """Fit ridge on a train split and score train/test (Han et al. §5.4 use λ = 0.01).

    classify (default: y is integer): regress one-hot targets and report argmax accuracy;
    otherwise report R². Returns {"train_<metric>", "test_<metric>", "n_train", "n_test"}.
    """
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    y = np.asarray(y)
    if classify is None:
        classify = np.issubdtype(y.dtype, np.integer)
    tr, te = train_test_split(len(X), test_frac, seed)
    if classify:
        classes = np.unique(y[tr])
        target = (y[:, None] == classes[None, :]).astype(np.float64)
        W, b = ridge_fit(X[tr], target[tr], lam)
        pred = classes[(X @ W + b).argmax(axis=1)]
        metric, score = "accuracy", lambda idx: float((pred[idx] == y[idx]).mean())
    else:
        W, b = ridge_fit(X[tr], y[tr], lam)
        pred = X @ W + b
        metric, score = "r2", lambda idx: r2_score(y[idx], pred[idx])
    return {f"train_{metric}": score(tr), f"test_{metric}": score(te), "n_train": len(tr), "n_test": len(te)}


def probe_heads(features: np.ndarray, y: np.ndarray, lam: float, **kw) -> dict[str, np.ndarray]:
    """ridge_probe for every (offset, head) of features (N, O, H, d) -> {metric: (O, H)}."""
    N, O, H, _ = features.shape
    out: dict[str, np.ndarray] = {}
    for o in range(O):
        for h in range(H):
            for key, value in ridge_probe(features[:, o, h], y, lam, **kw).items():
                out.setdefault(key, np.zeros((O, H)))[o, h] = value
    return out


def _decoder_layers(model):
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    return decoder.layers


@torch.inference_mode()
def collect_kv(
    model,
    tokenizer,
    prompt_set: dict[str, Any],
    layer: int,
    offsets: Sequence[int],
    query: str | None = None,
) -> dict[str, np.ndarray]:
    """Key and value vectors of `layer` at label position y_i + offset for every demonstration.

    Forward hooks on self_attn.k_proj / v_proj (installed only for this call) read the projections,
    so keys are pre-RoPE: comparable across positions. The prompt is prefix + `query` (default the
    first query) so that offsets past the last demo's label exist.
    Returns keys, values: (n_demos, len(offsets), n_kv_heads, head_dim) float32, positions (n, O).
    """
    if query is None:
        query = prompt_set["queries"][0]["query"] if prompt_set["queries"] else ""
    spans = demo_spans(tokenizer, prompt_set, query)
    positions = spans.y[:, None] + np.asarray(offsets, dtype=np.int64)[None, :]
    if positions.size and (positions.min() < 0 or positions.max() >= len(spans.ids)):
        raise KernelError(f"offsets {tuple(offsets)} reach outside the {len(spans.ids)}-token prompt")
    attn = _decoder_layers(model)[layer].self_attn
    config = model.config
    n_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    seen: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(_module, _inputs, output):
            seen[name] = output.detach()

        return hook

    handles = [attn.k_proj.register_forward_hook(keep("keys")), attn.v_proj.register_forward_hook(keep("values"))]
    try:
        forward_at(model, [spans.ids], mask=False)  # hooks read k/v
    finally:
        for handle in handles:
            handle.remove()
    idx = torch.as_tensor(positions.reshape(-1), device=model.device)
    out = {
        name: seen[name][0, idx].float().cpu().numpy().reshape(positions.shape + (n_kv, head_dim))
        for name in ("keys", "values")
    }
    out["positions"] = positions
    return out

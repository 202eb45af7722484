"""Attention weights as kernel weights (Han et al. §5.2-5.3): each head's reconstruction of the ICL
prediction, its scores, the best head chosen on a selection split, and the correlation of attention
with prediction similarity.

`reconstruct` turns a_i into a per-head prediction argmax Σ a_i e(y_i) / Σ a_i; `select_heads` picks
the best head on a selection split and scores it on the disjoint rest (700/300 in the TMLR paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iclgd.kernel.spans import KernelError


def _broadcast_labels(demo_labels: np.ndarray, ndim: int) -> np.ndarray:
    """(n,) stays; (Q, n) becomes (Q, 1, ..., 1, n) so it broadcasts against a (Q, L, H, n)."""
    labels = np.asarray(demo_labels, dtype=np.int64)
    if labels.ndim > 1:
        labels = labels.reshape(labels.shape[:-1] + (1,) * (ndim - labels.ndim) + labels.shape[-1:])
    return labels


def reconstruct(a: np.ndarray, demo_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """ŷ = argmax_c Σ_i a_i e(y_i)_c / Σ_i a_i over the last axis of `a` (..., n) -> (...).

    demo_labels: (n,) or (Q, n) when each query had its own demonstrations. Ties (including all
    zero weights) go to the lowest class index.
    """
    a = np.asarray(a, dtype=np.float64)
    onehot = np.eye(n_classes)[_broadcast_labels(demo_labels, a.ndim)]  # (..., n, C)
    votes = (a[..., None] * onehot).sum(axis=-2)
    total = a.sum(axis=-1, keepdims=True)
    votes = np.divide(votes, total, out=np.zeros_like(votes), where=total > 0)
    return votes.argmax(axis=-1)


def head_scores(
    a: np.ndarray, demo_labels: np.ndarray, icl_pred: np.ndarray, gold: np.ndarray, n_classes: int
) -> dict[str, np.ndarray]:
    """Per-head agreement of the reconstruction with ŷ and its accuracy vs gold; a: (Q, L, H, n) -> (L, H)."""
    rec = reconstruct(a, demo_labels, n_classes)  # (Q, L, H)
    shape = (-1,) + (1,) * (rec.ndim - 1)
    return {
        "agreement": (rec == np.asarray(icl_pred).reshape(shape)).mean(axis=0),
        "accuracy": (rec == np.asarray(gold).reshape(shape)).mean(axis=0),
    }


def split_indices(n: int, select_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (selection, evaluation) index sets, sorted, from one seeded permutation."""
    if not 0 < select_frac < 1:
        raise KernelError(f"select_frac must lie in (0, 1), got {select_frac}")
    perm = np.random.default_rng(seed).permutation(n)
    cut = int(round(select_frac * n))
    return np.sort(perm[:cut]), np.sort(perm[cut:])


@dataclass
class HeadSelection:
    """The best head on the selection split and its scores on the held-out evaluation split."""

    layer: int
    head: int
    select_idx: np.ndarray
    eval_idx: np.ndarray
    select_agreement: float
    eval_agreement: float
    eval_accuracy: float
    icl_eval_accuracy: float


def select_heads(
    a: np.ndarray,
    demo_labels: np.ndarray,
    icl_pred: np.ndarray,
    gold: np.ndarray,
    n_classes: int,
    select_frac: float,
    seed: int,
) -> HeadSelection:
    """Pick the head whose reconstruction agrees most with ŷ on a selection split, score it on the rest.

    Han et al. (TMLR) use 700 selection / 300 evaluation examples, answering the ICLR reviewer's
    head-selection overfitting concern; reporting the best head on the same data would inflate it.
    """
    a, icl_pred, gold = np.asarray(a), np.asarray(icl_pred), np.asarray(gold)
    labels = np.asarray(demo_labels)
    sel, ev = split_indices(len(a), select_frac, seed)
    pick = (lambda idx: labels[idx]) if labels.ndim > 1 else (lambda idx: labels)
    on_sel = head_scores(a[sel], pick(sel), icl_pred[sel], gold[sel], n_classes)
    layer, head = np.unravel_index(int(np.argmax(on_sel["agreement"])), on_sel["agreement"].shape)
    on_ev = head_scores(a[ev][:, layer : layer + 1, head : head + 1], pick(ev), icl_pred[ev], gold[ev], n_classes)
    return HeadSelection(
        layer=int(layer),
        head=int(head),
        select_idx=sel,
        eval_idx=ev,
        select_agreement=float(on_sel["agreement"][layer, head]),
        eval_agreement=float(on_ev["agreement"][0, 0]),
        eval_accuracy=float(on_ev["accuracy"][0, 0]),
        icl_eval_accuracy=float((icl_pred[ev] == gold[ev]).mean()),
    )


def prediction_similarity(p_query: np.ndarray, p_demos: np.ndarray) -> np.ndarray:
    """sim(x, x_i) = P(o|x)ᵀ P(o|x_i): (Q, C) × (n, C) -> (Q, n)."""
    return np.asarray(p_query) @ np.asarray(p_demos).T


def similarity_correlation(attn: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """Per-head Pearson r between attention on demo i and sim(x, x_i), pooled over queries and demos.

    attn: (Q, L, H, n) (e.g. Capture.a); sim: (Q, n). Returns (L, H); NaN where either side is constant.
    """
    attn = np.asarray(attn, dtype=np.float64)
    sim = np.asarray(sim, dtype=np.float64)
    if attn.ndim != 4 or sim.shape != (attn.shape[0], attn.shape[3]):
        raise KernelError(f"expected attn (Q, L, H, n) and sim (Q, n); got {attn.shape} and {sim.shape}")
    x = np.moveaxis(attn, 3, 1).reshape(-1, attn.shape[1], attn.shape[2])  # (Q*n, L, H)
    y = sim.reshape(-1)
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    num = np.einsum("kij,k->ij", xc, yc)
    den = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum())
    # Centred sums of a constant column are ~1e-17 rather than exactly 0: treat tiny spread as constant.
    flat = (np.ptp(x, axis=0) == 0) | (np.ptp(y) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[flat | (den == 0)] = np.nan
    return r

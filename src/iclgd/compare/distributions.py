"""How alike are two methods' outputs on the same test examples (ICL vs fine-tuning, or ICL vs ICL)?

Shen et al. 2023 ("Do pretrained Transformers learn in-context by gradient descent?") compare ICL with GD on
the same N demonstrations by three numbers: full-vocabulary accuracy (`full_correct`), top-10 token overlap
and the cosine of the probabilities of the overlapping tokens, plus the spread of the output across
demonstration orderings (`iclgd.order.spread`: GD on a full batch is order-invariant, so any ICL
spread argues against equivalence). Dai et al. 2023 ("Why can GPT learn in-context?") add Rec2FTP
(`iclgd.core.metrics.rec2ftp`): of the examples fine-tuning fixes, how many does ICL fix too. Both views are
about how each method *moves* the zero-shot output, so the module also measures the shift from zero-shot
(KL, entropy change, and the cosine between the two shifts of the label log-probs).

Records store only the full-vocabulary log-probs of the label tokens and the top-10 tokens, never the whole
distribution, so every full-vocabulary quantity here is either exact on those tokens or a documented bound.
All logarithms are natural (nats). Shares and accuracies are fractions in [0, 1], not percentages.

NaN policy: a per-example metric that is undefined (no overlapping tokens, a zero shift vector, an empty
Rec2FTP denominator) is NaN, never 0; table means skip NaNs and report how many were undefined.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from iclgd.core.metrics import label_logprobs_renormalised, rec2ftp

#: One test example under one demonstration sample: what two methods must share to be compared.
KEYS = ("model", "dataset", "k", "seed", "uid")
#: Zero-shot records have no demonstrations, so they match on the test example alone.
ZERO_KEYS = ("model", "dataset", "uid")
#: Tags that tell the compared method's settings apart (one table row per combination).
TAGS = ("method", "optimizer", "subset", "lr", "epoch", "order")


# ---------------------------------------------------------------------------------------------------------
# Joining records


def pair(a: pd.DataFrame, b: pd.DataFrame, on: Sequence[str] = KEYS) -> pd.DataFrame:
    """Inner join of two record frames on the same test example; other columns get suffixes _a / _b.

    Every non-key column is suffixed (not only the clashing ones) so downstream code can rely on the names.
    Duplicate keys on either side (several lr / order / optimizer values not yet selected) would silently
    multiply rows, so they raise ValueError, as does an empty join.
    """
    on = list(on)
    for name, frame in (("a", a), ("b", b)):
        missing = [c for c in on if c not in frame.columns]
        if missing:
            raise ValueError(f"side {name} lacks key columns {missing} (keys {on})")
        dup = frame.duplicated(on)
        if dup.any():
            raise ValueError(
                f"side {name} has {int(dup.sum())} rows with duplicate keys {on}; select one lr / order / "
                "optimizer (or group by them) before pairing"
            )
    left = a.rename(columns={c: f"{c}_a" for c in a.columns if c not in on})
    right = b.rename(columns={c: f"{c}_b" for c in b.columns if c not in on})
    joined = left.merge(right, on=on, how="inner")
    if joined.empty:
        raise ValueError(f"no common test examples on keys {on}")
    return joined


# ---------------------------------------------------------------------------------------------------------
# Shen et al.: top-10 agreement


def token_overlap(ids_a: ArrayLike, ids_b: ArrayLike) -> float:
    """|top10(a) ∩ top10(b)| / 10: the share of a's top-10 next tokens that b also ranks in its top 10.

    The denominator is the list length (10 in the records); both lists must have it.
    """
    ids_a, ids_b = np.asarray(ids_a).ravel(), np.asarray(ids_b).ravel()
    if len(ids_a) != len(ids_b) or len(ids_a) == 0:
        raise ValueError(f"top-k lists must be non-empty and equally long, got {len(ids_a)} and {len(ids_b)}")
    return len(set(ids_a.tolist()) & set(ids_b.tolist())) / len(ids_a)


def _shared(ids_a, probs_a, ids_b, probs_b) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of the tokens in both top-k lists, aligned by token id (in a's rank order)."""
    b = dict(zip(np.asarray(ids_b).ravel().tolist(), np.asarray(probs_b, dtype=float).ravel().tolist()))
    pa, pb = [], []
    for t, p in zip(np.asarray(ids_a).ravel().tolist(), np.asarray(probs_a, dtype=float).ravel().tolist()):
        if t in b:
            pa.append(p)
            pb.append(b[t])
    return np.array(pa), np.array(pb)


def overlap_cosine(ids_a: ArrayLike, probs_a: ArrayLike, ids_b: ArrayLike, probs_b: ArrayLike) -> float:
    """cos(p_a[S], p_b[S]) = Σ_S p_a p_b / (‖p_a[S]‖ ‖p_b[S]‖), S = top10(a) ∩ top10(b), matched by token id.

    Compares the *shape* of the two distributions where both put their mass. Undefined (NaN) when S is empty;
    such examples are excluded from means and counted separately. With |S| = 1 it is 1 by construction.
    """
    pa, pb = _shared(ids_a, probs_a, ids_b, probs_b)
    na, nb = np.linalg.norm(pa), np.linalg.norm(pb)
    if len(pa) == 0 or na == 0 or nb == 0:
        return float("nan")
    return float(pa @ pb / (na * nb))


# ---------------------------------------------------------------------------------------------------------
# Shift of the output distribution from zero-shot


def label_kl(logprobs_p: ArrayLike, logprobs_q: ArrayLike) -> float:
    """KL(p ‖ q) = Σ_c p(c) (log p(c) − log q(c)) on the label distributions (renormalised over classes).

    Used as KL(method ‖ zero-shot): how far the demonstrations (ICL) or the updates (GD) moved the prediction.
    """
    lp, lq = label_logprobs_renormalised(logprobs_p), label_logprobs_renormalised(logprobs_q)
    return float(np.sum(np.exp(lp) * (lp - lq)))


def label_entropy(label_logprobs: ArrayLike) -> float:
    """H(p) = −Σ_c p(c) log p(c) of the label distribution."""
    lp = label_logprobs_renormalised(label_logprobs)
    return float(-np.sum(np.exp(lp) * lp))


def entropy_change(logprobs_method: ArrayLike, logprobs_zero: ArrayLike) -> float:
    """H(method) − H(zero-shot) on the label distribution; negative means the method made the model surer."""
    return label_entropy(logprobs_method) - label_entropy(logprobs_zero)


def coarse_kl_lower_bound(
    ids_p: ArrayLike, probs_p: ArrayLike, ids_q: ArrayLike, probs_q: ArrayLike, tol: float = 1e-6
) -> float:
    """KL(p ‖ q) of the full-vocabulary distributions coarse-grained to S ∪ {rest}, S = top10(p) ∩ top10(q).

    = Σ_{t∈S} p_t log(p_t / q_t) + r_p log(r_p / r_q),  r = 1 − Σ_{t∈S} prob_t  (0 log 0 = 0).

    Merging tokens into buckets is a deterministic map, so by the data-processing inequality this is a lower
    bound on the full-vocabulary KL(p ‖ q), which the top-10 records cannot give exactly. Disjoint top-10s
    give 0, the trivial bound. Used as KL(method ‖ zero-shot).

    The stored probabilities are float32, so a rest below `tol` is rounding noise: r_p < tol counts as 0
    (its true term r_p log(r_p / r_q) ≥ r_p log r_p > −tol ln(1/tol) ≈ −1.4e-5 is dropped) and r_q is
    floored at tol (a true r_q ≤ tol only makes the true term larger), so the bound holds up to ~1e-5.
    """
    ps, qs = _shared(ids_p, probs_p, ids_q, probs_q)
    rest_p = 1.0 - ps.sum()
    p = np.append(ps, rest_p if rest_p >= tol else 0.0)
    q = np.append(qs, max(1.0 - qs.sum(), tol))
    mass = p > 0
    if np.any(q[mass] == 0):
        return float("inf")
    return float(np.sum(p[mass] * np.log(p[mass] / q[mass])))


def shift_cosine(logprobs_icl: ArrayLike, logprobs_other: ArrayLike, logprobs_zero: ArrayLike) -> float:
    """cos(l_icl − l_zero, l_other − l_zero) on the raw (full-vocabulary) label log-probs of one example.

    The output-level analogue of Dai et al.'s SimAOU: do ICL and GD push the label scores the same way?
    NaN when either shift is exactly the zero vector (no direction to compare).
    """
    zero = np.asarray(logprobs_zero, dtype=float)
    u = np.asarray(logprobs_icl, dtype=float) - zero
    v = np.asarray(logprobs_other, dtype=float) - zero
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return float("nan")
    return float(u @ v / (nu * nv))


# ---------------------------------------------------------------------------------------------------------
# Per-example comparison and the table


def compare_examples(
    icl: pd.DataFrame, other: pd.DataFrame, zero: pd.DataFrame, by: Sequence[str] = TAGS
) -> pd.DataFrame:
    """Per-example metrics of ICL vs each setting of `other` (grouped by its tags `by`), for paired tests.

    `icl` must hold one record per (model, dataset, k, seed, uid), i.e. one ordering; `other` one per key
    within each `by` group; `zero` the k = 0 records, one per (model, dataset, uid). Every paired example
    must have a zero-shot record. Columns: KEYS, `by` (of `other`), label_index, token_overlap,
    overlap_cosine, shift_cosine, and per side s ∈ {icl, other, zero}: correct_s (label-restricted argmax),
    full_correct_s (full-vocabulary top-1 is the gold label token); per method m ∈ {icl, other}:
    label_kl_m = KL(m ‖ zero), entropy_change_m = H(m) − H(zero), coarse_kl_m (lower bound on the
    full-vocabulary KL(m ‖ zero)).
    """
    by = list(by)
    if not (zero["k"] == 0).all():
        raise ValueError("zero must hold zero-shot (k = 0) records only")
    dup = zero.duplicated(list(ZERO_KEYS))
    if dup.any():
        raise ValueError(f"zero has {int(dup.sum())} rows with duplicate keys {list(ZERO_KEYS)}")
    zcols = ["label_logprobs", "top10_ids", "top10_probs", "pred_index", "full_correct"]
    z = zero[[*ZERO_KEYS, *zcols]].rename(columns={c: f"{c}_zero" for c in zcols})
    frames = []
    for tags, group in other.groupby(by, dropna=False, sort=True):
        paired = pair(icl, group, on=KEYS).merge(z, on=list(ZERO_KEYS), how="left")
        lacking = paired["label_logprobs_zero"].isna()
        if lacking.any():
            raise ValueError(f"{int(lacking.sum())} paired examples have no zero-shot record (keys {list(ZERO_KEYS)})")
        frames.append(_example_metrics(paired, dict(zip(by, tags))))
    if not frames:
        raise ValueError("other has no records")
    return pd.concat(frames, ignore_index=True)


def _example_metrics(p: pd.DataFrame, tags: dict) -> pd.DataFrame:
    """Metrics of one paired frame (icl = _a, other = _b, zero = _zero)."""
    out = p[list(KEYS)].copy()
    for name, value in tags.items():
        out[name] = value
    out["label_index"] = p["label_index_a"].to_numpy()
    ia, pa, ib, pb = p["top10_ids_a"], p["top10_probs_a"], p["top10_ids_b"], p["top10_probs_b"]
    iz, pz = p["top10_ids_zero"], p["top10_probs_zero"]
    la, lb, lz = p["label_logprobs_a"], p["label_logprobs_b"], p["label_logprobs_zero"]
    gold = p["label_index_a"].to_numpy()
    out["token_overlap"] = [token_overlap(x, y) for x, y in zip(ia, ib)]
    out["overlap_cosine"] = [overlap_cosine(*t) for t in zip(ia, pa, ib, pb)]
    out["shift_cosine"] = [shift_cosine(*t) for t in zip(la, lb, lz)]
    for side, s in (("icl", "a"), ("other", "b"), ("zero", "zero")):
        out[f"correct_{side}"] = (p[f"pred_index_{s}"].to_numpy() == gold).astype(float)
        out[f"full_correct_{side}"] = p[f"full_correct_{s}"].astype(float).to_numpy()
    for side, ids, probs, lp in (("icl", ia, pa, la), ("other", ib, pb, lb)):
        out[f"label_kl_{side}"] = [label_kl(x, y) for x, y in zip(lp, lz)]
        out[f"entropy_change_{side}"] = [entropy_change(x, y) for x, y in zip(lp, lz)]
        out[f"coarse_kl_{side}"] = [coarse_kl_lower_bound(*t) for t in zip(ids, probs, iz, pz)]
    return out


def summarise(examples: pd.DataFrame, by: Sequence[str] = TAGS) -> pd.DataFrame:
    """One row per (model, dataset, k, *by) of a `compare_examples` frame: means over seeds × examples.

    NaN metrics are skipped in means and counted in *_undefined. rec2ftp uses label-restricted correctness
    (Dai et al. classify by scoring the label candidates), rec2ftp_full the full-vocabulary one; *_n are their
    denominators.
    """
    setting = ["model", "dataset", "k", *by]
    means = [
        "token_overlap", "overlap_cosine", "shift_cosine",
        "full_correct_icl", "full_correct_other", "full_correct_zero", "correct_icl", "correct_other", "correct_zero",
        "label_kl_icl", "label_kl_other", "entropy_change_icl", "entropy_change_other", "coarse_kl_icl",
        "coarse_kl_other",
    ]
    rows = []
    for key, g in examples.groupby(setting, dropna=False, sort=True):
        row = dict(zip(setting, key)) | {"n_examples": len(g), "n_seeds": g["seed"].nunique()}
        row |= {m: g[m].mean() for m in means}
        row |= {f"{m}_undefined": int(g[m].isna().sum()) for m in ("overlap_cosine", "shift_cosine")}
        for name, prefix in (("rec2ftp", "correct"), ("rec2ftp_full", "full_correct")):
            value, n = rec2ftp(g[f"{prefix}_zero"], g[f"{prefix}_other"], g[f"{prefix}_icl"])
            row |= {name: value, f"{name}_n": n}
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.rename(columns={c: c.replace("full_correct_", "acc_full_").replace("correct_", "acc_") for c in means})


def comparison_table(
    icl: pd.DataFrame, other: pd.DataFrame, zero: pd.DataFrame, by: Sequence[str] = TAGS
) -> pd.DataFrame:
    """`summarise(compare_examples(icl, other, zero, by), by)`: the ICL-vs-`other` table, one row per setting.

    Columns: model, dataset, k, *by, n_examples, n_seeds, token_overlap, overlap_cosine (+ _undefined),
    shift_cosine (+ _undefined), acc_full_{icl,other,zero}, acc_{icl,other,zero} (label-restricted),
    label_kl_*, entropy_change_*, coarse_kl_*, rec2ftp(+_n), rec2ftp_full(+_n).
    """
    return summarise(compare_examples(icl, other, zero, by), by)

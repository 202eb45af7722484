"""Last-token attention over the demonstrations (Han et al. §5.1-5.2).

`capture` runs each query after the shared prefix with eager attention and keeps only the last
token's attention reductions: a resampled profile over each demonstration's input span, the mass on
labels / inputs / first token / query / the rest, and the kernel weight a_i of each demonstration.
Every array returned is numpy float32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from iclgd.core.forward import encode_query, forward_at, label_token_ids, prefix_cache
from iclgd.kernel.spans import KernelError, Spans, prefix_spans, with_query


#: Resampled length of each demonstration's input span (Han et al. §5.1).
PROFILE_LEN = 30
#: Columns of `Capture.mass`; the parts partition the last token's attention row (see `capture`).
MASS_PARTS = ("label", "input", "start", "query", "other")


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
    prefix_ids, xs, xe, ys = prefix_spans(tokenizer, prompt_set)
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
            q_ids = encode_query(tokenizer, _query_text(query), prompt_set["prefix"])
            if not q_ids:
                raise KernelError(f"query {query!r} tokenizes to nothing")
            spans = with_query(prefix_ids, xs, xe, ys, q_ids)
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

"""Next-token scoring at the answer position, the measurement every experiment shares.

All test queries of one prompt set share the demonstration prefix, so it is encoded once and its
KV cache reused for every batch of queries (`score_queries`); `score_full` is the plain
full-prompt forward the cached path must match.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

TOPK = 10

#: Columns of every records table (ICL now; fine-tuned models use the same schema with their tags).
RECORD_COLUMNS = [
    "model", "dataset", "method", "k", "seed", "order", "optimizer", "subset", "lr", "epoch",
    "uid", "label", "label_index", "pred_index", "label_logprobs", "argmax_id", "argmax_token",
    "full_correct", "top10_ids", "top10_probs", "n_tokens",
]


class ScoringError(ValueError):
    """Label words that the tokenizer cannot tell apart, or similar setup mistakes."""


def dummy_prefix_id(tokenizer) -> int | None:
    """Id of the bare "▁" a SentencePiece tokenizer (LLaMa) puts before every text it encodes, or None.

    Why: SentencePiece's add_dummy_prefix makes " positive" encode as ["▁", "▁positive"] and a query
    encoded on its own start with "▁Review", while inside a prompt the model sees "▁positive" after
    "Sentiment:" and "Review" after the prefix's newline. Byte-level BPE (SmolLM2) and Gemma add nothing.
    """
    ids = tokenizer("\n", add_special_tokens=False).input_ids
    if len(ids) > 1 and tokenizer.convert_ids_to_tokens(ids[0]) == "\u2581":
        return ids[0]
    return None


def label_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """First token of each label word as the model sees it after the answer cue ("Sentiment: positive"):
    the first token of ' word', or of 'word' for a tokenizer whose dummy prefix already supplies the
    space (LLaMa: "▁positive", not a bare "▁"). They must be distinct to score a class."""
    space = "" if dummy_prefix_id(tokenizer) is not None else " "
    ids = []
    for word in words:
        toks = tokenizer(space + word, add_special_tokens=False).input_ids
        if not toks:
            raise ScoringError(f"label word {word!r} tokenizes to nothing")
        ids.append(toks[0])
    if len(set(ids)) != len(ids):
        shown = {w: tokenizer.convert_ids_to_tokens(i) for w, i in zip(words, ids)}
        raise ScoringError(f"label words share a first token ({shown}); choose other verbalizer words")
    return ids


def encode_prefix(tokenizer, prefix: str) -> list[int]:
    """Prefix ids with the tokenizer's own special tokens (Gemma adds BOS, SmolLM2 adds none)."""
    return tokenizer(prefix).input_ids


def encode_query(tokenizer, query: str, prefix: str = "") -> list[int]:
    """Query ids as they follow `prefix` (a prompt set's demonstrations, ending in a newline).

    Only a dummy-prefix tokenizer (LLaMa) depends on `prefix`: after a non-empty one the query is encoded
    behind a newline and that newline's ids dropped, so encode_prefix(p) + encode_query(q, p) is the
    encoding of p + q; with no prefix the query starts the text and keeps its "▁". Other tokenizers
    ignore `prefix`.
    """
    if not prefix or dummy_prefix_id(tokenizer) is None:
        return tokenizer(query, add_special_tokens=False).input_ids
    anchor = tokenizer("\n", add_special_tokens=False).input_ids
    ids = tokenizer("\n" + query, add_special_tokens=False).input_ids
    if ids[: len(anchor)] != anchor:
        raise ScoringError(f"query {query[:40]!r} merges with a preceding newline; cannot encode it alone")
    return ids[len(anchor):]


def context_window(model) -> int | None:
    """The model's `max_position_embeddings` (of its text config for nested ones such as Gemma 3), or None."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(text, "max_position_embeddings", None)
    if window is None:
        window = getattr(config, "max_position_embeddings", None)
    return int(window) if window else None


def check_length(model, n_tokens: int, what: str) -> None:
    """Refuse a forward over more tokens than the model's context window (`max_position_embeddings`).

    Why: positions past it get rotary angles the model never saw in training, so its predictions there
    are garbage without any error; the start-up length estimate cannot guarantee every prompt. No check
    for a model whose config has no window. Cheap: one comparison per batch.
    """
    window = context_window(model)
    if window is not None and n_tokens > window:
        config = getattr(model, "config", None)
        name = getattr(config, "name_or_path", "") or type(model).__name__
        raise ScoringError(
            f"{what}: prompt of {n_tokens} tokens exceeds {name}'s context window of {window} "
            "(max_position_embeddings); positions past it were never trained. Use fewer or shorter "
            "demonstrations (k, n_demos, max query length) or a model with a longer context; see README "
            "'Context length'."
        )


def _summarise(logits: torch.Tensor, label_ids: list[int], full: bool = False) -> dict[str, np.ndarray]:
    """Full-vocabulary log-probs -> label log-probs, argmax and top-k, in float32 numpy.

    full=True also returns "probs", the whole (rows, vocab) next-token distribution, for analyses
    that summarise it in memory (the order experiment); records never store it.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    top = logp.topk(TOPK, dim=-1)
    out = {
        "label_logprobs": logp[:, label_ids].cpu().numpy(),
        "argmax_id": logp.argmax(dim=-1).cpu().numpy(),
        "top10_ids": top.indices.cpu().numpy(),
        "top10_probs": top.values.exp().cpu().numpy(),
    }
    if full:
        out["probs"] = logp.exp().cpu().numpy()
    return out


@torch.inference_mode()
def score_full(model, prompt_ids: list[int], label_ids: list[int]) -> dict[str, np.ndarray]:
    """Reference: one plain forward over the whole prompt, no cache."""
    check_length(model, len(prompt_ids), "score_full")
    ids = torch.tensor([prompt_ids], device=model.device)
    logits = model(input_ids=ids).logits[:, -1, :]
    return _summarise(logits, label_ids)


@contextlib.contextmanager
def head_at(model, positions: torch.Tensor) -> Iterator[None]:
    """Inside the block the output head sees only each row's hidden state at `positions` (B,) or
    (B, n): logits come out as (B, 1, vocab) or (B, n, vocab).

    A pre-hook gathers the hidden states before the head, so logits cost B x n x vocab instead of
    B x length x vocab (Gemma's 262k-token head would otherwise cost more than its decoder), and
    any transform the model applies after the head (soft-capping, scaling) stays in place.
    """
    index = positions.to(model.device)
    if index.dim() == 1:
        index = index[:, None]
    rows = torch.arange(index.shape[0], device=model.device)[:, None]

    def gather(_module, args):
        (hidden,) = args
        if hidden.shape[0] != index.shape[0]:
            raise RuntimeError(f"output head got {hidden.shape[0]} rows, expected {index.shape[0]}")
        return (hidden[rows, index],)

    handle = model.get_output_embeddings().register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True)
class Prefix:
    """A shared prefix's KV cache and its length in tokens (a sliding-window cache may hold fewer)."""

    cache: Any
    length: int


def prefix_cache(model, prefix_ids: Sequence[int]) -> Prefix | None:
    """KV cache of a shared prefix (None for an empty one), computed once and copied per batch."""
    if not prefix_ids:
        return None
    check_length(model, len(prefix_ids), "shared prefix")
    ids = torch.tensor([list(prefix_ids)], device=model.device)
    return Prefix(model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values, len(prefix_ids))


def forward_at(
    model,
    rows: Sequence[Sequence[int]],
    positions: torch.Tensor | None = None,
    *,
    pad_id: int = 0,
    mask: bool = True,
    prefix: Prefix | None = None,
    hidden_states: bool = False,
    attentions: bool = False,
):
    """The one batched forward every stage uses: token-id rows, right-padded, after an optional cached
    prefix, with the output head applied only at `positions` ((B,) or (B, n); default: each row's last
    token). Returns the model output; its logits are (B, 1, vocab) or (B, n, vocab).

    Right padding puts pads after every answer position, so causal attention keeps them out of the
    real tokens; `mask=False` drops the attention mask altogether (training: no fully masked attention
    row can put NaNs into the backward pass). `prefix` is a `prefix_cache`, copied and repeated per row.
    Refuses (`check_length`) a longest row that, after the prefix, passes the model's context window.
    """
    lengths = torch.tensor([len(r) for r in rows])
    width = int(lengths.max())
    n_prefix = prefix.length if prefix is not None else 0
    check_length(model, n_prefix + width, f"longest of {len(rows)} row(s)"
                 + (f" after a {n_prefix}-token cached prefix" if n_prefix else ""))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(list(row))
    kwargs: dict[str, Any] = {}
    if mask:
        attention = torch.zeros((len(rows), n_prefix + width), dtype=torch.long)
        attention[:, :n_prefix] = 1
        for i, row in enumerate(rows):
            attention[i, n_prefix : n_prefix + len(row)] = 1
        kwargs["attention_mask"] = attention.to(model.device)
    if prefix is not None:
        past = copy.deepcopy(prefix.cache)
        past.batch_repeat_interleave(len(rows))
        kwargs["past_key_values"] = past
    if hidden_states:
        kwargs["output_hidden_states"] = True
    if attentions:
        kwargs["output_attentions"] = True
    at = lengths - 1 if positions is None else positions
    with head_at(model, at):
        return model(
            input_ids=ids.to(model.device),
            position_ids=(n_prefix + torch.arange(width)).expand(len(rows), -1).to(model.device),
            use_cache=prefix is not None,
            **kwargs,
        )


@torch.inference_mode()
def score_queries(
    model,
    tokenizer,
    prefix: str,
    queries: Sequence[str],
    label_ids: list[int],
    batch_size: int = 16,
    progress: bool = False,
    batch_tokens: int = 1024,
    full: bool = False,
) -> dict[str, np.ndarray]:
    """Score every query after the shared prefix, reusing the prefix's KV cache.

    full=True adds "probs": each query's full-vocabulary next-token distribution (queries x vocab).

    Queries are sorted by length and packed into batches of at most `batch_size` rows and
    `batch_tokens` padded query tokens (long-tailed datasets such as RTE would otherwise pay for
    mostly padding), and scored at their own last token.
    """
    prefix_ids = encode_prefix(tokenizer, prefix)
    query_ids = [encode_query(tokenizer, q, prefix) for q in queries]
    cache = prefix_cache(model, prefix_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = np.argsort([len(q) for q in query_ids], kind="stable")
    parts: list[dict[str, np.ndarray]] = []
    groups = length_batches([len(query_ids[i]) for i in order], batch_size, batch_tokens)
    for start, stop in tqdm(groups, desc="score", disable=not progress, leave=False):
        batch = [query_ids[i] for i in order[start:stop]]
        out = forward_at(model, batch, pad_id=pad, prefix=cache)
        parts.append(_summarise(out.logits[:, 0], label_ids, full))
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    result = {key: value[inverse] for key, value in merged.items()}
    result["n_tokens"] = np.array([len(prefix_ids) + len(q) for q in query_ids])
    return result


def length_batches(sorted_lengths: Sequence[int], max_rows: int, max_tokens: int) -> list[tuple[int, int]]:
    """Greedy [start, stop) groups of ascending lengths with rows * longest <= max_tokens.

    A single over-long query still gets a batch of its own.
    """
    groups: list[tuple[int, int]] = []
    start = 0
    for stop in range(1, len(sorted_lengths) + 1):
        rows = stop - start
        if rows > max_rows or rows * sorted_lengths[stop - 1] > max_tokens:
            if rows > 1:
                groups.append((start, stop - 1))
                start = stop - 1
    if start < len(sorted_lengths):
        groups.append((start, len(sorted_lengths)))
    return groups


def score_prompt_set(
    model,
    tokenizer,
    prompt_set: dict[str, Any],
    batch_size: int = 16,
    tags: dict[str, Any] | None = None,
    batch_tokens: int = 1024,
) -> pd.DataFrame:
    """Score one prompt set and return its records (one row per test query)."""
    label_ids = label_token_ids(tokenizer, prompt_set["label_words"])
    queries = prompt_set["queries"]
    texts = [q["query"] for q in queries]
    scores = score_queries(
        model, tokenizer, prompt_set["prefix"], texts, label_ids, batch_size, batch_tokens=batch_tokens
    )
    return records_frame(tokenizer, prompt_set, scores, label_ids, tags or {})


def records_frame(tokenizer, prompt_set, scores, label_ids, tags) -> pd.DataFrame:
    """Assemble the shared records schema from raw scores."""
    classes = prompt_set["classes"]
    queries = prompt_set["queries"]
    gold = np.array([classes.index(q["label"]) for q in queries])
    argmax = scores["argmax_id"]
    frame = pd.DataFrame(
        {
            "model": tags.get("model", ""),
            "dataset": prompt_set["dataset"],
            "method": tags.get("method", "icl"),
            "k": prompt_set["k"],
            "seed": prompt_set["seed"],
            "order": prompt_set.get("order", 0),
            "optimizer": tags.get("optimizer", "none"),
            "subset": tags.get("subset", "none"),
            "lr": float(tags.get("lr", 0.0)),
            "epoch": int(tags.get("epoch", 0)),
            "uid": [q["uid"] for q in queries],
            "label": [q["label"] for q in queries],
            "label_index": gold,
            "pred_index": scores["label_logprobs"].argmax(axis=1),
            "label_logprobs": list(scores["label_logprobs"].astype(np.float32)),
            "argmax_id": argmax,
            "argmax_token": tokenizer.convert_ids_to_tokens(argmax.tolist()),
            "full_correct": argmax == np.array(label_ids)[gold],
            "top10_ids": list(scores["top10_ids"]),
            "top10_probs": list(scores["top10_probs"].astype(np.float32)),
            "n_tokens": scores["n_tokens"],
        }
    )
    return frame[RECORD_COLUMNS]

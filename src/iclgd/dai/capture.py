"""Dai et al. (2023) captures: one forward per query records, in every decoder layer, the self-attention
module's output at the last token and that token's raw attention scores over the query's own tokens.

A forward hook on every decoder layer's `self_attn` reads its output at the last token, and a custom function
registered with transformers' `AttentionInterface` records q_last · Kᵀ · scaling before delegating to the
model's own eager or sdpa attention, so the model computes exactly what it would otherwise. The metrics
computed from these captures are in `similarity`; the stage that produces them is `run`.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from iclgd.core import forward
from iclgd.core.forward import encode_prefix, encode_query

#: Name the recording attention function (and its mask function) is registered under.
ATTN_NAME = "iclgd_dai"
#: Arrays of a DaiCapture, as stored.
FIELDS = ("outputs", "scores", "n_query", "n_tokens", "label_logprobs")


class DaiError(ValueError):
    """Captures that cannot be compared (shapes, queries) or a model the capture cannot instrument."""


@dataclass
class DaiCapture:
    """Last-token captures of Q queries through L layers with H query heads.

    outputs: (Q, L, D) float32, the self-attention module's output (after o_proj, before the residual add
        and any post-attention norm) at the query's last token.
    scores: (Q, L, H, T) float32, the last token's raw attention scores q·k·scaling (soft-capped where the
        model soft-caps, so that their softmax is the model's attention) over the query's own tokens,
        right-aligned: query i's n_query[i] scores are the last columns and the columns before are 0 (as in
        Dai's code; zeros do not change a cosine of two rows with the same padding).
    n_query: (Q,) int, query tokens (positions after the prefix).
    n_tokens: (Q,) int, whole prompt length (prefix + query).
    label_logprobs: (Q, C) float32 full-vocabulary next-token log-probs of the label tokens (as `forward`
        computes them), so the same forward also says whether the run classifies the query correctly.
    """

    outputs: np.ndarray
    scores: np.ndarray
    n_query: np.ndarray
    n_tokens: np.ndarray
    label_logprobs: np.ndarray


def decoder_layers(model) -> Sequence[torch.nn.Module]:
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    return decoder.layers


class _Recorder:
    """Attention function: records the last query row's raw scores per layer, then runs `base`."""

    def __init__(self, base: str):
        self.base = base
        self.rows: dict[int, torch.Tensor] = {}

    def _delegate(self, module) -> Callable:
        if self.base == "eager":  # every modeling file defines its own eager_attention_forward
            return importlib.import_module(type(module).__module__).eager_attention_forward
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        return ALL_ATTENTION_FUNCTIONS[self.base]

    def __call__(self, module, query, key, value, attention_mask, *args, **kwargs):
        scaling = kwargs.get("scaling")
        if scaling is None:
            scaling = module.head_dim**-0.5
        groups = query.shape[1] // key.shape[1]  # grouped-query attention: query heads per key head
        keys = key.repeat_interleave(groups, dim=1) if groups > 1 else key
        row = torch.matmul(query[:, :, -1:, :], keys.transpose(2, 3))[:, :, 0, :] * scaling
        softcap = kwargs.get("softcap")
        if softcap is not None:
            row = torch.tanh(row / softcap) * softcap
        self.rows[int(module.layer_idx)] = row.detach()
        return self._delegate(module)(module, query, key, value, attention_mask, *args, **kwargs)


@contextlib.contextmanager
def recording_attention(model) -> Iterator[_Recorder]:
    """Switch the model to the recording attention for the block; the previous implementation afterwards.

    The recorder wraps the model's current implementation (eager or sdpa; anything else is run as sdpa)
    and registers the matching mask function under the same name, since transformers builds masks per
    implementation name.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if not hasattr(model, "set_attn_implementation"):
        raise DaiError("model cannot switch attention implementations (transformers >= 4.56 needed)")
    before = model.config._attn_implementation
    base = before if before in ("eager", "sdpa") else "sdpa"
    recorder = _Recorder(base)
    AttentionInterface.register(ATTN_NAME, recorder)
    AttentionMaskInterface.register(ATTN_NAME, ALL_MASK_ATTENTION_FUNCTIONS[base])
    model.set_attn_implementation(ATTN_NAME)
    if model.config._attn_implementation != ATTN_NAME:
        raise DaiError(f"{type(model).__name__} did not accept the custom attention {ATTN_NAME!r}")
    try:
        yield recorder
    finally:
        model.set_attn_implementation(before)


@contextlib.contextmanager
def attention_outputs(model) -> Iterator[dict[int, torch.Tensor]]:
    """Forward hooks on every layer's self_attn keeping its output at the last token, for the block only."""
    seen: dict[int, torch.Tensor] = {}

    def keep(index: int):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            seen[index] = out[:, -1].detach()

        return hook

    handles = [layer.self_attn.register_forward_hook(keep(i)) for i, layer in enumerate(decoder_layers(model))]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


@torch.inference_mode()
def capture(
    model, tokenizer, prefix: str, queries: Sequence[str], label_ids: Sequence[int], progress: bool = False
) -> DaiCapture:
    """Per query, per layer: the attention output at the last token and its raw scores over the query tokens.

    Prompts are encoded as `forward` encodes them (encode_prefix(prefix) + encode_query(query, prefix)), so a
    zero-shot capture (prefix "") sees the tokens zero-shot scoring and fine-tuning see. The prefix is run
    once and its KV cache copied for every query (one query per forward, no padding).
    """
    prefix_ids = encode_prefix(tokenizer, prefix)
    query_ids = [encode_query(tokenizer, q, prefix) for q in queries]
    if any(not q for q in query_ids):
        raise DaiError("a query tokenizes to nothing")
    n_layers = len(decoder_layers(model))
    outputs, rows, logps = [], [], []
    with recording_attention(model) as recorder, attention_outputs(model) as seen:
        cache = forward.prefix_cache(model, prefix_ids)
        for q_ids in tqdm(query_ids, desc="capture", disable=not progress, leave=False):
            recorder.rows.clear()
            seen.clear()
            out = forward.forward_at(model, [q_ids], mask=False, prefix=cache)
            if len(recorder.rows) != n_layers or len(seen) != n_layers:
                raise DaiError(f"captured {len(recorder.rows)} score rows and {len(seen)} outputs for {n_layers} layers")
            logps.append(torch.log_softmax(out.logits[0, -1].float(), dim=-1)[list(label_ids)].cpu().numpy())
            outputs.append(torch.stack([seen[i][0] for i in range(n_layers)]).float().cpu().numpy())
            # the query's tokens are the last len(q_ids) keys in every layer (sliding-window caches included)
            rows.append(torch.stack([recorder.rows[i][0, :, -len(q_ids):] for i in range(n_layers)]).float().cpu().numpy())
    width = max(len(q) for q in query_ids)
    scores = np.zeros((len(rows), n_layers, rows[0].shape[1], width), dtype=np.float32)
    for i, row in enumerate(rows):
        scores[i, ..., width - row.shape[-1]:] = row
    return DaiCapture(
        outputs=np.stack(outputs).astype(np.float32),
        scores=scores,
        n_query=np.array([len(q) for q in query_ids], dtype=np.int64),
        n_tokens=np.array([len(prefix_ids) + len(q) for q in query_ids], dtype=np.int64),
        label_logprobs=np.stack(logps).astype(np.float32),
    )


def capture_arrays(name: str, cap: DaiCapture) -> dict[str, Any]:
    """Flat arrays for np.savez (`<name>_outputs`, ...)."""
    return {f"{name}_{field}": getattr(cap, field) for field in FIELDS}


def capture_from(arrays: Any, name: str, index: int | None = None) -> DaiCapture:
    """Inverse of `capture_arrays` (index picks one prompt set out of stacked arrays)."""
    pick = (lambda a: a) if index is None else (lambda a: a[index])
    return DaiCapture(**{f: pick(arrays[f"{name}_{f}"]) for f in FIELDS})

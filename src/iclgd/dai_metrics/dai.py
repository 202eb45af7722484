"""Dai et al. (2023) "Why can GPT learn in-context?": the ICL-vs-fine-tuning similarity metrics.

Dai et al. fine-tune only the attention key/value projections with SGD (batch 1, one step per
demonstration, in the ICL order, one epoch) and compare three runs on the same test example: the base
model zero-shot (ZS), the base model with the demonstrations (ICL) and the fine-tuned model zero-shot
(FT). Their code (microsoft/LMOps understand_icl/icl_ft/compute_sim.py) defines:

* Rec2FTP: of the examples ZS gets wrong and FT gets right, the share ICL gets right
  (`iclgd.icl_vs_gd.compare.rec2ftp`);
* SimAOU, per layer: cos(ĥ_ICL − ĥ_ZS, ĥ_FT − ĥ_ZS), ĥ the L2-normalised output of the self-attention
  module at the last token; averaged over examples, then layers. Baseline "random SimAOU": the FT update
  replaced by a uniform [0, 1) vector;
* SimAM: cosine between ICL's and FT's last-token raw (pre-softmax) attention scores over the query's own
  tokens, averaged over heads, examples, then layers. Baseline "ZSL SimAM": ICL against ZS.

`capture` records both quantities in one forward per query: a forward hook on every decoder layer's
`self_attn` reads its output at the last token, and a custom function registered with transformers'
`AttentionInterface` records q_last · Kᵀ · scaling before delegating to the model's own eager or sdpa
attention, so the model computes exactly what it would otherwise.

Undefined cosines (a zero vector, e.g. a layer whose update is exactly zero) are NaN, where Dai's code adds
1e-20 to the denominator and reports 0; means skip NaNs.
"""

from __future__ import annotations

import contextlib
import importlib
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from iclgd.core import forward, training
from iclgd.core.forward import encode_prefix, encode_query

#: Name the recording attention function (and its mask function) is registered under.
ATTN_NAME = "iclgd_dai"
#: Arrays of a DaiCapture, as stored.
FIELDS = ("outputs", "scores", "n_query", "n_tokens", "label_logprobs")
#: The three runs every metric compares.
CONDITIONS = ("zs", "icl", "ft")


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
    label_logprobs: (Q, C) float32 full-vocabulary next-token log-probs of the label tokens (as `scoring`
        computes them), so the same forward also says whether the run classifies the query correctly.
    """

    outputs: np.ndarray
    scores: np.ndarray
    n_query: np.ndarray
    n_tokens: np.ndarray
    label_logprobs: np.ndarray


# ---------------------------------------------------------------------------------------------------------
# Capture


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

    Prompts are encoded as `scoring` encodes them (encode_prefix(prefix) + encode_query(query)), so a
    zero-shot capture (prefix "") sees the tokens zero-shot scoring and fine-tuning see. The prefix is run
    once and its KV cache copied for every query (one query per forward, no padding).
    """
    prefix_ids = encode_prefix(tokenizer, prefix)
    query_ids = [encode_query(tokenizer, q) for q in queries]
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


def pad_scores(scores: np.ndarray, width: int) -> np.ndarray:
    """Left-pad right-aligned score rows (..., T) with zeros to `width` columns."""
    extra = width - scores.shape[-1]
    if extra < 0:
        raise DaiError(f"cannot pad {scores.shape[-1]} score columns to {width}")
    return np.pad(scores, [(0, 0)] * (scores.ndim - 1) + [(extra, 0)])


# ---------------------------------------------------------------------------------------------------------
# Metrics (numpy; the last axis is the compared vector)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine over the last axis; NaN where either vector is zero (undefined, not 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DaiError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def unit(x: np.ndarray) -> np.ndarray:
    """L2-normalise the last axis (Dai's norm_hidden); zero vectors stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def simaou(h_icl: np.ndarray, h_ft: np.ndarray, h_zs: np.ndarray) -> np.ndarray:
    """cos(ĥ_ICL − ĥ_ZS, ĥ_FT − ĥ_ZS) per (query, layer): outputs (Q, L, D) -> (Q, L)."""
    zs = unit(h_zs)
    return cosine(unit(h_icl) - zs, unit(h_ft) - zs)


def random_simaou(h_icl: np.ndarray, h_zs: np.ndarray, seed: int | Sequence[int]) -> np.ndarray:
    """Dai's baseline: cos(ĥ_ICL − ĥ_ZS, u), u ~ uniform [0, 1)^D drawn per (query, layer): (Q, L)."""
    update = unit(h_icl) - unit(h_zs)
    return cosine(update, np.random.default_rng(seed).random(update.shape))


def simam(s_a: np.ndarray, s_b: np.ndarray) -> np.ndarray:
    """Cosine of two runs' raw attention-score rows over the query tokens, mean over heads: (Q, L, H, T) -> (Q, L).

    Both inputs must have the same (right-aligned, zero-padded) layout, which `capture` gives any two runs
    of the same queries. Heads whose cosine is undefined are skipped in the mean.
    """
    sims = cosine(s_a, s_b)
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        return np.nanmean(sims, axis=-1)


@contextlib.contextmanager
def _quiet_nanmean() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        yield


def layer_mean(values: np.ndarray) -> np.ndarray:
    """(Q, L) -> (Q,): each query's mean over layers (NaN layers skipped), the unit bootstrapped over."""
    with _quiet_nanmean():
        return np.nanmean(np.asarray(values, dtype=np.float64), axis=-1)


def per_layer(values: np.ndarray) -> np.ndarray:
    """(Q, L) -> (L,): mean over queries per layer (Dai average examples first, then layers)."""
    with _quiet_nanmean():
        return np.nanmean(np.asarray(values, dtype=np.float64), axis=0)


def query_metrics(
    zs: DaiCapture, icl: DaiCapture, ft: DaiCapture, seed: int | Sequence[int]
) -> dict[str, np.ndarray]:
    """Every per-(query, layer) metric of one prompt set: simaou, random_simaou, simam, zsl_simam -> (Q, L)."""
    if not (np.array_equal(zs.n_query, icl.n_query) and np.array_equal(zs.n_query, ft.n_query)):
        raise DaiError("the three captures are of different queries (query token counts differ)")
    return {
        "simaou": simaou(icl.outputs, ft.outputs, zs.outputs),
        "random_simaou": random_simaou(icl.outputs, zs.outputs, seed),
        "simam": simam(icl.scores, ft.scores),
        "zsl_simam": simam(icl.scores, zs.scores),
    }


def capture_arrays(name: str, cap: DaiCapture) -> dict[str, Any]:
    """Flat arrays for np.savez (`<name>_outputs`, ...)."""
    return {f"{name}_{field}": getattr(cap, field) for field in FIELDS}


def capture_from(arrays: Any, name: str, index: int | None = None) -> DaiCapture:
    """Inverse of `capture_arrays` (index picks one prompt set out of stacked arrays)."""
    pick = (lambda a: a) if index is None else (lambda a: a[index])
    return DaiCapture(**{f: pick(arrays[f"{name}_{f}"]) for f in FIELDS})


# ---------------------------------------------------------------------------------------------------------
# The stage: zero-shot, ICL and Dai-style fine-tuning of one model on one dataset's prompt sets


@dataclass(frozen=True)
class DaiConfig:
    """The `dai` config block (pipeline-level `models` / `datasets` aside); unknown keys are errors."""

    k: tuple[int, ...] = (1, 2, 4, 8)
    seeds: tuple[int, ...] = ()  # () = every demonstration seed of the prompt file
    lr: float = 1e-3
    epochs: int = 1
    n_queries: int | None = 16  # None = every test query
    seed: int = 0

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> DaiConfig:
        spec = {key: value for key, value in spec.items() if key not in ("models", "datasets")}
        unknown = set(spec) - set(cls.__dataclass_fields__)
        if unknown:
            raise DaiError(f"config key dai: unknown keys {sorted(unknown)} (known: {sorted(cls.__dataclass_fields__)})")
        values: dict[str, Any] = dict(spec)
        for key in ("k", "seeds"):
            if key in values:
                values[key] = tuple(int(x) for x in values[key] or ())
        for key, cast in (("lr", float), ("epochs", int), ("seed", int)):  # PyYAML reads 1e-3 as a string
            if key in values:
                values[key] = cast(values[key])
        if values.get("n_queries") is not None:
            values["n_queries"] = int(values["n_queries"])
        config = cls(**values)
        if not config.k or min(config.k) < 1:
            raise DaiError("config key dai.k: list one or more k >= 1 (fine-tuning needs demonstrations)")
        if config.epochs < 1 or config.lr <= 0:
            raise DaiError("config keys dai.epochs / dai.lr: need epochs >= 1 and lr > 0")
        if config.n_queries is not None and config.n_queries < 1:
            raise DaiError("config key dai.n_queries: at least 1 (or null for every test query)")
        return config


def select_prompt_sets(prompt_sets: Sequence[dict[str, Any]], cfg: DaiConfig) -> list[dict[str, Any]]:
    """The prompt sets the stage runs: k in dai.k, seed in dai.seeds (all if empty), default order only."""
    chosen = [
        ps for ps in prompt_sets
        if ps["k"] in cfg.k and (not cfg.seeds or ps["seed"] in cfg.seeds) and ps.get("order", 0) == 0
    ]
    missing = set(cfg.k) - {ps["k"] for ps in chosen}
    if missing:
        raise DaiError(f"config key dai.k: no prompt sets with k = {sorted(missing)} (is it in icl.k?)")
    return sorted(chosen, key=lambda ps: (ps["k"], ps["seed"]))


def pick_queries(prompt_sets: Sequence[dict[str, Any]], n: int | None, seed: int) -> list[dict[str, Any]]:
    """A seeded subset of the test queries (in their file order); every prompt set must share them."""
    queries = list(prompt_sets[0]["queries"])
    uids = [q["uid"] for q in queries]
    for ps in prompt_sets[1:]:
        if [q["uid"] for q in ps["queries"]] != uids:
            raise DaiError(f"prompt sets k={ps['k']} seed={ps['seed']} have other test queries than the first")
    if n is None or n >= len(queries):
        return queries
    idx = np.sort(np.random.default_rng(seed).choice(len(queries), size=n, replace=False))
    return [queries[i] for i in idx]


def update_norm(model, saved: dict[str, torch.Tensor]) -> float:
    """‖θ_FT − θ_base‖ over the trained parameters: how far fine-tuning moved (0 means it did nothing)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        return float(sum(((params[n].detach().cpu() - w) ** 2).sum() for n, w in saved.items()) ** 0.5)


def run(
    model, tokenizer, prompt_sets: Sequence[dict[str, Any]], cfg: DaiConfig, progress: bool = True
) -> tuple[dict[str, np.ndarray], pd.DataFrame, pd.DataFrame]:
    """Capture ZS once, then per prompt set ICL, Dai-style fine-tuning and FT (zero-shot prompt).

    Fine-tuning follows Dai et al.: SGD on k_proj + v_proj only, batch size 1, one step per demonstration
    in the prompt's order, `cfg.epochs` epochs, the label token's cross-entropy (`training.train`). The base
    weights are restored after every prompt set. Returns (arrays for np.savez, per-query correctness, one
    row per prompt set with losses, update norm and timings).
    """
    sets = select_prompt_sets(prompt_sets, cfg)
    queries = pick_queries(sets, cfg.n_queries, cfg.seed)
    texts = [q["query"] for q in queries]
    classes, words = sets[0]["classes"], sets[0]["label_words"]
    if any(ps["classes"] != classes or ps["label_words"] != words for ps in sets):
        raise DaiError("prompt sets of one dataset disagree on classes or label words")
    label_ids = forward.label_token_ids(tokenizer, words)
    gold = np.array([classes.index(q["label"]) for q in queries])
    started = time.perf_counter()
    zs = capture(model, tokenizer, "", texts, label_ids, progress)
    zs_seconds = time.perf_counter() - started
    names = training.select_parameters(model, "kv")
    saved = training.snapshot(model, names)
    icl_caps, ft_caps, frames, runs = [], [], [], []
    for ps in tqdm(sets, desc="dai prompt sets", disable=not progress):
        t0 = time.perf_counter()
        icl = capture(model, tokenizer, ps["prefix"], texts, label_ids, progress)
        t1 = time.perf_counter()
        examples = training.encode_examples(tokenizer, training.demo_queries(ps), classes, label_ids)
        with training.trainable(model, names, saved) as params:
            result = training.train(model, examples, "sgd", cfg.lr, cfg.epochs, params)
            with torch.no_grad():
                final_loss = float(training.label_loss(model, examples).item())
            moved = update_norm(model, saved)
            t2 = time.perf_counter()
            ft = capture(model, tokenizer, "", texts, label_ids, progress)
            t3 = time.perf_counter()
        icl_caps.append(icl)
        ft_caps.append(ft)
        frames.append(pd.DataFrame({
            "k": ps["k"], "seed": ps["seed"], "uid": [q["uid"] for q in queries], "label_index": gold,
            **{f"{name}_pred": cap.label_logprobs.argmax(axis=1) for name, cap in (("zs", zs), ("icl", icl), ("ft", ft))},
        }))
        runs.append({
            "k": ps["k"], "seed": ps["seed"], "n_steps": len(examples) * cfg.epochs, "lr": cfg.lr,
            "epochs": cfg.epochs, "first_loss": result.losses[0], "final_loss": final_loss,
            "update_norm": moved, "icl_capture_seconds": t1 - t0, "train_seconds": t2 - t1,
            "ft_capture_seconds": t3 - t2, "zs_capture_seconds": zs_seconds,
        })
    correct = pd.concat(frames, ignore_index=True)
    for name in CONDITIONS:
        correct[f"{name}_correct"] = correct[f"{name}_pred"] == correct["label_index"]
    arrays: dict[str, np.ndarray] = {
        "k": np.array([ps["k"] for ps in sets], dtype=np.int64),
        "seed": np.array([ps["seed"] for ps in sets], dtype=np.int64),
        "uid": np.array([q["uid"] for q in queries], dtype=np.uint64),
        "label_index": gold,
        **capture_arrays("zs", zs),
    }
    for name, caps in (("icl", icl_caps), ("ft", ft_caps)):
        for field in FIELDS:
            arrays[f"{name}_{field}"] = np.stack([getattr(c, field) for c in caps])
    return arrays, correct, pd.DataFrame(runs)

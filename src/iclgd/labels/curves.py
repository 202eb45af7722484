"""In-context learning curves from one forward pass, their per-position metrics and summaries.

A context of N demonstrations is encoded piecewise so the index of every answer position (the last
token before a label word) is known exactly; one forward pass then yields N predictions, the i-th
conditioning on demonstrations 1..i-1 only (Kossen et al. 2023, `plot_utils.get_values`). The
prediction is the model's next-token distribution restricted to the label tokens (each word's first
token as it follows the answer cue, `forward.label_token_ids`) and renormalised over them.

Per-position metrics are scored against the TRUE labels (`correct`, `loglik`, `entropy`) and
against the labels shown in context (`agree_presented`, `loglik_presented`), so flipped or
replaced labels can be judged both as "still knows the task" and as "learned the shown mapping".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from iclgd.labels import conditions as labels
from iclgd.core import forward, prompts, stats

log = logging.getLogger(__name__)

#: Columns of the per-position table (one row per model, dataset, condition, repetition, position).
CURVE_COLUMNS = [
    "model", "dataset", "condition", "repetition", "position", "label", "presented",
    "correct", "loglik", "entropy", "agree_presented", "loglik_presented",
]
KEYS = ["model", "dataset", "condition"]
METRICS = ["correct", "loglik", "entropy", "agree_presented", "loglik_presented"]
FLIPPED_KINDS = ("flipped", "instructed_flipped")
RECENCY = ["default_to_flipped", "flipped_to_default", "alternating"]


@dataclass(frozen=True)
class Context:
    """Token ids of one context and, per demonstration, the index of its answer position."""

    ids: list[int]
    answer_positions: list[int]


# --------------------------------------------------------------------------- encoding


def encode_context(tokenizer, queries: Sequence[str], words: Sequence[str], instruction: str = "") -> Context:
    """Ids of `instruction`, then each rendered query followed by ' ' + its label word.

    Built piece by piece so answer positions are exact. Each separator is encoded together with
    the query it precedes ('\\n\\nReview: ...'), and ' word' on its own, which is how the
    tokenizer splits the rendered text anyway (the tests check the ids equal those of the whole
    rendered string), while a lone '\\n\\n' would often get a different token than it has
    in running text. Every piece goes through `forward.encode_query` with the text before it as
    `prefix`: a SentencePiece tokenizer (LLaMa) would otherwise put its dummy "▁" in front of each
    piece ("Sentiment: ▁ ▁positive"); byte-level BPE (SmolLM2, Gemma) ignores the prefix.
    """
    if len(queries) != len(words):
        raise ValueError(f"{len(queries)} queries but {len(words)} label words")
    ids = forward.encode_prefix(tokenizer, instruction)
    text = instruction  # what `ids` encode; only its emptiness matters to encode_query
    word_ids: dict[str, list[int]] = {}  # ' word' always follows a query, so its ids are context-free
    answers = []
    for i, (query, word) in enumerate(zip(queries, words)):
        sep = prompts.DEMO_SEPARATOR if i > 0 or instruction else ""
        ids += forward.encode_query(tokenizer, sep + query, text)
        text += sep + query
        answers.append(len(ids) - 1)
        if word not in word_ids:
            word_ids[word] = forward.encode_query(tokenizer, " " + word, text)
        ids += word_ids[word]
        text += " " + word
    return Context(ids, answers)


# --------------------------------------------------------------------------- read-out


@torch.inference_mode()
def all_position_logprobs(
    model, contexts: Sequence[Context], label_ids: Sequence[int], batch_size: int, pad_id: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """(contexts, N, classes) label log-probs, renormalised over the label tokens, at every answer position.

    Contexts are sorted by length and right-padded in batches (pads follow every answer position,
    so causal attention never lets them in).
    """
    n = len(contexts[0].answer_positions)
    if any(len(c.answer_positions) != n for c in contexts):
        raise ValueError("all contexts of one call must have the same number of demonstrations")
    out = np.empty((len(contexts), n, len(label_ids)), dtype=np.float32)
    order = np.argsort([len(c.ids) for c in contexts], kind="stable")
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="curves", disable=not progress, leave=False):
        rows = order[start : start + batch_size]
        out[rows] = _batch_logprobs(model, [contexts[i] for i in rows], list(label_ids), pad_id)
    return out


def _batch_logprobs(model, batch: list[Context], label_ids: list[int], pad_id: int) -> np.ndarray:
    """One padded forward; the output head only sees the answer positions (`forward.forward_at`)."""
    positions = torch.tensor([c.answer_positions for c in batch])
    logits = forward.forward_at(model, [c.ids for c in batch], positions, pad_id=pad_id).logits
    return torch.log_softmax(logits[..., label_ids].float(), dim=-1).cpu().numpy()


# --------------------------------------------------------------------------- metrics


def position_metrics(logprobs: np.ndarray, true: np.ndarray, presented: np.ndarray) -> dict[str, np.ndarray]:
    """Per-position metrics from renormalised label log-probs (..., classes).

    Ties in the argmax go to the lower class index.
    """
    true, presented = np.asarray(true), np.asarray(presented)
    pred = logprobs.argmax(axis=-1)

    def pick(index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(logprobs, index[..., None], axis=-1)[..., 0]

    return {
        "correct": pred == true,
        "loglik": pick(true),
        "entropy": -(np.exp(logprobs) * logprobs).sum(axis=-1),
        "agree_presented": pred == presented,
        "loglik_presented": pick(presented),
    }


def curve_frame(
    logprobs: np.ndarray, true: np.ndarray, presented: np.ndarray, tags: dict[str, Any], repetitions: Sequence[int]
) -> pd.DataFrame:
    """The tidy per-position table for one condition: (repetitions, N) arrays flattened row-major."""
    reps, n = true.shape
    values = position_metrics(logprobs, true, presented)
    frame = pd.DataFrame(
        {
            "model": tags.get("model", ""),
            "dataset": tags.get("dataset", ""),
            "condition": tags.get("condition", ""),
            "repetition": np.repeat(np.asarray(repetitions), n),
            "position": np.tile(np.arange(1, n + 1), reps),
            "label": true.ravel(),
            "presented": presented.ravel(),
            **{k: v.ravel() for k, v in values.items()},
        }
    )
    return frame[CURVE_COLUMNS]


# --------------------------------------------------------------------------- experiment


def run_curves(
    model, tokenizer, train: pd.DataFrame, spec: dict[str, Any], cfg: dict[str, Any],
    model_name: str = "", progress: bool = False,
) -> pd.DataFrame:
    """Every configured condition (`cfg`: the `curves` block) on `repetitions` random contexts of one dataset:
    the per-position table.

    Repetition r draws the same demonstrations under every condition (paired comparisons).
    """
    name, classes, template = spec["name"], list(spec["classes"]), spec["template"]
    n, seed = int(cfg["n_demos"]), int(cfg["seed"])
    reps = list(range(int(cfg["repetitions"])))
    verbalizer = [spec["verbalizer"][c] for c in classes]
    draws = [labels.sample_context(train, n, labels.demo_rng(name, n, seed, r), cfg["replace"]) for r in reps]
    queries = [[prompts.render_query(template, row) for row in d.to_dict("records")] for d in draws]
    true = np.stack([labels.label_indices(d, classes) for d in draws])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    frames = []
    for cond in labels.build_conditions(cfg, len(classes)):
        words = labels.condition_words(cond, verbalizer)
        label_ids = forward.label_token_ids(tokenizer, words)
        prefix = labels.instruction(cond, words)
        shown = np.stack(
            [labels.presented_labels(cond, t, len(classes), labels.label_rng(name, cond.name, n, seed, r))
             for r, t in zip(reps, true)]
        )
        contexts = [encode_context(tokenizer, q, [words[i] for i in s], prefix) for q, s in zip(queries, shown)]
        logprobs = all_position_logprobs(model, contexts, label_ids, int(cfg["batch_size"]), pad, progress)
        tags = {"model": model_name, "dataset": name, "condition": cond.name}
        frames.append(curve_frame(logprobs, true, shown, tags, reps))
        log.info("%s/%s: %d contexts of %d demos, mean length %.0f tokens", name, cond.name, len(reps), n,
                 np.mean([len(c.ids) for c in contexts]))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- aggregation


def _by_repetition(group: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(repetition x position) matrix of one metric."""
    return group.pivot(index="repetition", columns="position", values=metric).astype(float)


def aggregate(table: pd.DataFrame, n_boot: int, ci: float, seed: int) -> pd.DataFrame:
    """Per (model, dataset, condition, position): mean and CI over repetitions of every metric."""
    rows = []
    for key, group in table.groupby(KEYS, sort=True):
        part = pd.DataFrame({"position": np.sort(group["position"].unique())})
        for metric in METRICS:
            matrix = _by_repetition(group, metric)
            mean, lo, hi = stats.bootstrap_ci(matrix.to_numpy(), n_boot, ci, seed, axis=0)
            part[metric], part[f"{metric}_lo"], part[f"{metric}_hi"] = mean, lo, hi
        part["n"] = group["repetition"].nunique()
        rows.append(part.assign(**dict(zip(KEYS, key))))
    columns = KEYS + ["position"] + [f"{m}{s}" for m in METRICS for s in ("", "_lo", "_hi")] + ["n"]
    return pd.concat(rows, ignore_index=True)[columns]


def _window_mean(group: pd.DataFrame, metric: str, positions: Sequence[int]) -> pd.Series:
    """Per repetition: the metric averaged over `positions`."""
    return _by_repetition(group, metric)[list(positions)].mean(axis=1)


def _claim_row(key, claim, condition, contrast, metric, window, per_rep: pd.Series, boot) -> dict[str, Any]:
    mean, lo, hi = stats.bootstrap_ci(per_rep.to_numpy()[:, None], *boot, axis=0)
    return {
        **dict(zip(["model", "dataset"], key)), "claim": claim, "condition": condition, "contrast": contrast,
        "metric": metric, "positions": window, "value": float(mean[0]), "lo": float(lo[0]), "hi": float(hi[0]),
        "n": len(per_rep), "samples": per_rep.to_numpy(dtype=float),
    }


def recency_position(table: pd.DataFrame) -> tuple[int, dict[str, tuple[int, int]]]:
    """The last position at which all recency conditions have seen as many default as flipped labels.

    Falls back to the final position if there is none. Returns it with (default, flipped) counts
    seen before it per condition (deterministic conditions, so the first repetition tells).
    """
    seen = {}
    for cond in RECENCY:
        rows = table[table["condition"] == cond]
        first = rows[rows["repetition"] == rows["repetition"].min()].sort_values("position")
        flipped = (first["presented"] != first["label"]).to_numpy()
        n_flip = np.concatenate([[0], np.cumsum(flipped)[:-1]])
        seen[cond] = (np.arange(len(flipped)) - n_flip, n_flip)
    n = len(next(iter(seen.values()))[0])
    equal = np.all([d == f for d, f in seen.values()], axis=0)
    pos = int(np.flatnonzero(equal)[-1]) + 1 if equal.any() else n
    return pos, {c: (int(d[pos - 1]), int(f[pos - 1])) for c, (d, f) in seen.items()}


def claim_samples(table: pd.DataFrame, cfg: dict[str, Any], n_boot: int, ci: float, seed: int) -> pd.DataFrame:
    """`claims` plus a `samples` column: the per-repetition values behind each row, for paired tests."""
    boot = (n_boot, ci, seed)
    rows: list[dict[str, Any]] = []
    for key, group in table.groupby(["model", "dataset"], sort=True):
        conds = {c: g for c, g in group.groupby("condition")}
        n = int(group["position"].max())
        rows += _labels_matter(key, conds, n, int(cfg["skip_first"]), boot)
        rows += _flip_learned(key, conds, n, int(cfg["last_window"]), boot)
        if all(c in conds for c in RECENCY):
            rows += _recency(key, conds, group, boot)
    return pd.DataFrame(rows)


def claims(table: pd.DataFrame, cfg: dict[str, Any], n_boot: int, ci: float, seed: int) -> pd.DataFrame:
    """Per (model, dataset): the summary numbers behind the paper's three claims, with CIs over repetitions
    (`cfg`: the `curves` block, for `skip_first` and `last_window`).

    - labels_matter: default minus random, averaged over positions > skip_first (paired by repetition).
    - flip_learned: agreement with (and log-lik of) the presented labels over the last `last_window`
      positions minus position 1, and the default condition's accuracy/log-lik minus that (gap to default).
    - recency: correctness/log-lik (vs the true = default mapping) of D->F, F->D and alternating at
      the `recency_position`, and D->F minus F->D.
    """
    return claim_samples(table, cfg, n_boot, ci, seed).drop(columns="samples", errors="ignore")


def _labels_matter(key, conds, n, skip, boot) -> list[dict[str, Any]]:
    if "default" not in conds or "random" not in conds or skip >= n:
        return []
    window = list(range(skip + 1, n + 1))
    out = []
    for metric in ("correct", "loglik", "entropy"):
        gap = _window_mean(conds["default"], metric, window) - _window_mean(conds["random"], metric, window)
        out.append(_claim_row(key, "labels_matter", "random", "default - random", metric, f"{skip + 1}-{n}", gap, boot))
    return out


def _flip_learned(key, conds, n, last, boot) -> list[dict[str, Any]]:
    window = list(range(max(1, n - last + 1), n + 1))
    label = f"{window[0]}-{n}"
    out = []
    for cond, group in conds.items():
        if cond not in FLIPPED_KINDS and not cond.startswith("words:"):
            continue
        for metric in ("agree_presented", "loglik_presented"):
            late = _window_mean(group, metric, window)
            gain = late - _window_mean(group, metric, [1])
            out.append(_claim_row(key, "flip_learned", cond, "last - position 1", metric, f"{label} vs 1", gain, boot))
            if "default" in conds:
                ref = "correct" if metric == "agree_presented" else "loglik"
                gap = _window_mean(conds["default"], ref, window) - late
                out.append(_claim_row(key, "flip_learned", cond, f"default {ref} - {cond}", metric, label, gap, boot))
    return out


def _recency(key, conds, group, boot) -> list[dict[str, Any]]:
    pos, counts = recency_position(group)
    out = []
    for metric in ("correct", "loglik", "agree_presented"):
        for cond in RECENCY:
            d, f = counts[cond]
            per_rep = _window_mean(conds[cond], metric, [pos])
            seen = f"seen {d} default, {f} flipped"
            out.append(_claim_row(key, "recency", cond, seen, metric, str(pos), per_rep, boot))
        diff = _window_mean(conds[RECENCY[0]], metric, [pos]) - _window_mean(conds[RECENCY[1]], metric, [pos])
        out.append(_claim_row(key, "recency", "default_to_flipped", "D->F - F->D", metric, str(pos), diff, boot))
    return out

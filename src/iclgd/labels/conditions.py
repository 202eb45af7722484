"""Label conditions for the Kossen, Gal & Rainforth (2023) experiments, and the contexts they label.

Every condition maps the TRUE label sequence of a context (class indices in the registry's
`classes` order) to the sequence *presented* in context, optionally with other label words or an
instruction in front. Metrics are always scored against the true labels (and, separately, against
the presented ones), so a condition only ever changes what the model sees.

Conditions (names as they appear in result tables):

- ``default``: presented = true, dataset verbalizer words.
- ``random``: each presented label drawn uniformly over the classes (the paper draws the label of
  another random training example; uniform is the brief's choice and equal for balanced data).
- ``flipped``: class c is shown as c + 1 mod C (a swap for binary tasks).
- ``words:A/B`` etc.: presented = true, but class i is shown with the i-th replacement word;
  a reversed list (``words:B/A``) is the same words with the mapping swapped.
- ``default_to_flipped`` / ``flipped_to_default``: the first `change_point` demonstrations use one
  mapping, the rest the other (paper: "flip halfway"); a null `change_point` means N // 2.
- ``alternating``: blocks of `block_size` demonstrations, default first, then flipped, and so on.
- ``instructed_flipped``: flipped labels behind an instruction that says so
  ("In the following, 'negative' means 'positive' and 'positive' means 'negative'.").

Novel task. The paper's author-identification data are private; the stand-in must have a label
relationship that exists only in context. `novel_pool` takes the training inputs of two (or more)
unrelated source datasets (e.g. SST-2 movie-review snippets and AG News headlines), lower-cases,
whitespace-normalises and truncates them to `max_chars` (the paper cuts messages to 200
characters), draws the same number from each source, and labels each input by its *source* with
arbitrary words (e.g. "foo"/"bar"). Which word a source gets is fixed by the config order, so
nothing in pretraining says which of "foo"/"bar" means "movie review"; zero-shot accuracy is
chance and anything above it is learned from the context.

Randomness: each (dataset, repetition) has its own demonstration stream and each
(dataset, condition, repetition) its own label stream, seeded through crc32 like
`prompts.setting_rng`, so results are reproducible and every condition of one repetition sees the
very same demonstrations (paired comparisons between conditions).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

#: Condition families accepted in `conditions`; some expand to several named conditions.
FAMILIES = ["default", "random", "flipped", "words", "flip_halfway", "alternating", "instructed_flipped"]


class LabelError(ValueError):
    """A condition or novel-task request that cannot be built."""


@dataclass(frozen=True)
class Condition:
    """One label condition: how labels are presented, with which words, behind which instruction."""

    name: str
    kind: str  # default|random|flipped|words|default_to_flipped|flipped_to_default|alternating|instructed_flipped
    words: tuple[str, ...] | None = None  # replacement words by class index; None: the verbalizer
    change_point: int = 0
    block_size: int = 1


def curve_rng(*keys: str | int) -> np.random.Generator:
    """A stable stream per key tuple: strings via crc32 (not hash()), integers as they are."""
    entropy = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(entropy)


def demo_rng(dataset: str, n_demos: int, seed: int, repetition: int) -> np.random.Generator:
    return curve_rng("curves-demos", dataset, n_demos, seed, repetition)


def label_rng(dataset: str, condition: str, n_demos: int, seed: int, repetition: int) -> np.random.Generator:
    return curve_rng("curves-labels", dataset, condition, n_demos, seed, repetition)


# --------------------------------------------------------------------------- label perturbations


def flip(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class c -> c + 1 mod C: a swap for binary tasks, a rotation with no fixed point otherwise."""
    return (np.asarray(labels) + 1) % n_classes


def random_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(n_classes, size=n)


def switch_at(labels: np.ndarray, n_classes: int, change_point: int, flipped_first: bool) -> np.ndarray:
    """One mapping for the first `change_point` demonstrations, the other for the rest."""
    labels = np.asarray(labels)
    late = np.arange(len(labels)) >= change_point
    flipped = ~late if flipped_first else late
    return np.where(flipped, flip(labels, n_classes), labels)


def alternate(labels: np.ndarray, n_classes: int, block_size: int) -> np.ndarray:
    """Default for the first block, flipped for the next, and so on."""
    labels = np.asarray(labels)
    flipped = (np.arange(len(labels)) // block_size) % 2 == 1
    return np.where(flipped, flip(labels, n_classes), labels)


def presented_labels(
    condition: Condition, labels: np.ndarray, n_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """The in-context label indices for one context under `condition`."""
    labels = np.asarray(labels)
    kind = condition.kind
    if kind in ("default", "words"):
        return labels.copy()
    if kind == "random":
        return random_labels(len(labels), n_classes, rng)
    if kind in ("flipped", "instructed_flipped"):
        return flip(labels, n_classes)
    if kind in ("default_to_flipped", "flipped_to_default"):
        return switch_at(labels, n_classes, condition.change_point, kind == "flipped_to_default")
    if kind == "alternating":
        return alternate(labels, n_classes, condition.block_size)
    raise LabelError(f"unknown condition kind {kind!r}")


def build_conditions(cfg: dict[str, Any], n_classes: int) -> list[Condition]:
    """Expand the configured families (the `curves` block) into named conditions for a task with `n_classes`
    classes."""
    change = cfg["change_point"] if cfg["change_point"] is not None else cfg["n_demos"] // 2
    out: list[Condition] = []
    for family in cfg["conditions"]:
        if family not in FAMILIES:
            raise LabelError(f"labels.conditions: unknown condition {family!r} (known: {FAMILIES})")
        if family == "words":
            lists = [tuple(w) for w in cfg["replacement_words"] if len(w) == n_classes]
            out += [Condition("words:" + "/".join(w), "words", words=w) for w in lists]
        elif family == "flip_halfway":
            out += [
                Condition("default_to_flipped", "default_to_flipped", change_point=change),
                Condition("flipped_to_default", "flipped_to_default", change_point=change),
            ]
        elif family == "alternating":
            out.append(Condition("alternating", "alternating", block_size=int(cfg["block_size"])))
        else:
            out.append(Condition(family, family))
    return out


def condition_words(condition: Condition, verbalizer_words: Sequence[str]) -> list[str]:
    """Label words by class index: the condition's replacement words or the dataset's own."""
    words = list(condition.words) if condition.words is not None else list(verbalizer_words)
    if len(words) != len(verbalizer_words):
        raise LabelError(f"condition {condition.name}: {len(words)} words for {len(verbalizer_words)} classes")
    return words


def flip_instruction(words: Sequence[str]) -> str:
    """Tell the model that the shown word of class c + 1 stands for class c."""
    n = len(words)
    pairs = [f"'{words[d]}' means '{words[(d - 1) % n]}'" for d in range(n)]
    joined = pairs[0] if n == 1 else ", ".join(pairs[:-1]) + " and " + pairs[-1]
    return f"In the following, {joined}."


def instruction(condition: Condition, words: Sequence[str]) -> str:
    """The text placed before the first demonstration ('' for all but instructed conditions)."""
    return flip_instruction(words) if condition.kind == "instructed_flipped" else ""


# --------------------------------------------------------------------------- contexts


def sample_context(train: pd.DataFrame, n_demos: int, rng: np.random.Generator, replace: bool) -> pd.DataFrame:
    """N demonstrations drawn uniformly (`curves.replace`: with replacement, as the paper's code does, or without)."""
    if not replace and n_demos > len(train):
        raise LabelError(f"cannot draw {n_demos} demonstrations without replacement from {len(train)} rows")
    return train.iloc[rng.choice(len(train), size=n_demos, replace=replace)]


def label_indices(rows: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    try:
        return np.array([lookup[c] for c in rows["label"]], dtype=np.int64)
    except KeyError as exc:
        raise LabelError(f"label {exc} is not one of the classes {list(classes)}") from None


# --------------------------------------------------------------------------- novel task


def novel_spec(novel: dict[str, Any], registry: dict[str, dict]) -> dict[str, Any]:
    """A registry-like spec for the source-identification task (`labels.novel`; see the module docstring)."""
    sources, words = list(novel["sources"]), list(novel["words"])
    if len(sources) < 2 or len(words) != len(sources):
        raise LabelError(f"labels.novel: need >= 2 sources and one word per source (got {sources}, {words})")
    missing = [s for s in sources if s not in registry]
    if missing:
        raise LabelError(f"labels.novel.sources: {missing[0]!r} is not in the dataset registry")
    return {
        "name": novel["name"],
        "template": "Input: {text}\nAnswer:",
        "fields": ["text"],
        "classes": sources,
        "verbalizer": dict(zip(sources, words)),
        "sources": {s: list(registry[s]["fields"]) for s in sources},
        "max_chars": int(novel["max_chars"]),
    }


def _clean(text: str, max_chars: int) -> str:
    return " ".join(str(text).lower().split())[:max_chars].rstrip()


def novel_pool(frames: dict[str, pd.DataFrame], spec: dict[str, Any], seed: int) -> pd.DataFrame:
    """Training rows of every source, equally many each, labelled by source (class = source name)."""
    n = min(len(frames[s]) for s in spec["sources"])
    parts = []
    for source, fields in spec["sources"].items():
        frame = frames[source]
        picks = curve_rng("curves-novel", source, seed).choice(len(frame), size=n, replace=False)
        rows = frame.iloc[np.sort(picks)]
        text = rows[fields].astype(str).agg(" ".join, axis=1).map(lambda t: _clean(t, spec["max_chars"]))
        parts.append(pd.DataFrame({"uid": rows["uid"].to_numpy(), "label": source, "text": text.to_numpy()}))
    return pd.concat(parts, ignore_index=True)

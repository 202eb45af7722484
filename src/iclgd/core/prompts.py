"""Prompt construction: the k demonstrations of every (dataset, k, seed) setting, fixed once.

Prompt sets are written as artifacts so ICL, fine-tuning and every later analysis read the very
same demonstrations in the very same order.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

DEMO_SEPARATOR = "\n\n"


class PromptError(ValueError):
    """A template or sampling request that cannot be honoured."""


def render_query(template: str, row: dict[str, Any]) -> str:
    """The zero-shot prompt for one example: template filled with the row's text fields."""
    try:
        return template.format(**row)
    except KeyError as exc:
        raise PromptError(f"template {template!r} names field {exc} that the data rows lack") from exc


def render_demo(template: str, verbalizer: dict[str, str], row: dict[str, Any]) -> str:
    """A demonstration: the zero-shot prompt followed by its label word."""
    return f"{render_query(template, row)} {verbalizer[row['label']]}"


def demo_inputs(prompt_set: dict[str, Any], error: type[Exception] = PromptError) -> list[str]:
    """Each demonstration's text minus its trailing " <label word>" (the inverse of `render_demo`): its
    zero-shot query. A demonstration that does not end with its label word raises `error`."""
    words = dict(zip(prompt_set["classes"], prompt_set["label_words"]))
    out = []
    for demo in prompt_set["demos"]:
        suffix = " " + words[demo["label"]]
        if not demo["text"].endswith(suffix):
            raise error(f"demo {demo['uid']} text does not end with its label word {suffix!r}")
        out.append(demo["text"][: -len(suffix)])
    return out


def setting_rng(dataset: str, k: int, seed: int, order: int = 0) -> np.random.Generator:
    """One independent stream per setting, stable across runs and Python versions (crc32, not hash())."""
    return np.random.default_rng([zlib.crc32(dataset.encode()), k, seed, order])


def sample_demos(
    train: pd.DataFrame, k: int, rng: np.random.Generator, balanced: bool = True, replace: bool = False
) -> pd.DataFrame:
    """Draw k demonstrations in a random order.

    balanced: classes are visited round-robin in a random class order, so k >= #classes covers
    every class and k < #classes never repeats one. replace=True draws with replacement (Kossen et al.).
    """
    if k == 0:
        return train.iloc[:0]
    if not replace and k > len(train):
        raise PromptError(f"cannot draw k={k} demonstrations without replacement from {len(train)} rows")
    if not balanced:
        picks = rng.choice(len(train), size=k, replace=replace)
        return train.iloc[picks]
    classes = sorted(train["label"].unique())
    class_order = rng.permutation(classes)
    by_class = {c: train.index[train["label"] == c].to_numpy() for c in classes}
    used: set[int] = set()
    rows = []
    for i in range(k):
        pool = by_class[class_order[i % len(classes)]]
        if not replace:
            pool = np.array([r for r in pool if r not in used])
            if len(pool) == 0:
                raise PromptError(f"class {class_order[i % len(classes)]!r} has too few rows for k={k}")
        row = pool[rng.integers(len(pool))]
        used.add(row)
        rows.append(row)
    return train.loc[rows].iloc[rng.permutation(k)]


def build_prompt_sets(
    name: str,
    spec: dict[str, Any],
    train: pd.DataFrame,
    test: pd.DataFrame,
    ks: Iterable[int],
    seeds: Iterable[int],
    balanced: bool = True,
    replace: bool = False,
) -> list[dict[str, Any]]:
    """One record per (k, seed): the demonstrations, the shared prefix, and every test query."""
    template, verbalizer = spec["template"], spec["verbalizer"]
    queries = [
        {"uid": int(r["uid"]), "label": r["label"], "query": render_query(template, r)}
        for r in test.to_dict("records")
    ]
    sets = []
    for k in ks:
        for seed in (seeds if k > 0 else [0]):  # zero-shot has no demonstrations to vary
            demos = sample_demos(train, k, setting_rng(name, k, seed), balanced, replace)
            rendered = [render_demo(template, verbalizer, r) for r in demos.to_dict("records")]
            sets.append(
                {
                    "dataset": name,
                    "k": int(k),
                    "seed": int(seed),
                    "order": 0,
                    "demos": [
                        {"uid": int(r["uid"]), "label": r["label"], "text": t}
                        for r, t in zip(demos.to_dict("records"), rendered)
                    ],
                    "prefix": "".join(t + DEMO_SEPARATOR for t in rendered),
                    "classes": list(spec["classes"]),
                    "label_words": [verbalizer[c] for c in spec["classes"]],
                    "queries": queries,
                }
            )
    return sets


def permuted(prompt_set: dict[str, Any], order: int) -> dict[str, Any]:
    """The same demonstrations in another seeded order (`order` >= 1), prefix re-rendered.

    Shen et al.'s reference for "how close is ICL to GD" is ICL under a different demonstration order,
    so the permutation is never the identity; k < 2 has no other order and raises PromptError.
    """
    k = len(prompt_set["demos"])
    if k < 2 or order < 1:
        raise PromptError(f"a permuted ordering needs k >= 2 demonstrations and order >= 1 (got k={k}, order={order})")
    rng = setting_rng(prompt_set["dataset"], k, prompt_set["seed"], order)
    perm = rng.permutation(k)
    while (perm == np.arange(k)).all():
        perm = rng.permutation(k)
    demos = [prompt_set["demos"][i] for i in perm]
    return {**prompt_set, "order": int(order), "demos": demos,
            "prefix": "".join(d["text"] + DEMO_SEPARATOR for d in demos)}


def permuted_sets(sets: Iterable[dict[str, Any]], n_orders: int, n_queries: int | None = None) -> list[dict[str, Any]]:
    """`n_orders` permuted copies (orders 1..n_orders) of every prompt set with k >= 2, scored on the
    first `n_queries` test queries (None: all; the test subset is already a seeded random draw)."""
    out = [permuted(ps, o) for ps in sets if ps["k"] >= 2 for o in range(1, n_orders + 1)]
    return [{**ps, "queries": ps["queries"][:n_queries]} for ps in out] if n_queries is not None else out


def write_prompt_sets(sets: list[dict[str, Any]], path: Path) -> None:
    """JSON Lines, keys sorted, so identical inputs give byte-identical files."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for record in sets:
            fh.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_prompt_sets(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]

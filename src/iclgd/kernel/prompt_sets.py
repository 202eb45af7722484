"""Prompt-set variants for the phenomena kernel regression explains (Han et al.): extra held-out
queries from the training split, similarity-retrieved demonstrations, and label words swapped for
meaningless single-token symbols.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from iclgd.core import prompts
from iclgd.core.forward import encode_query, label_token_ids
from iclgd.kernel.spans import KernelError, demo_inputs


def draw_train_queries(train, exclude_uids: Sequence[int], n_queries: int, n_pool: int, seed: int):
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
        ids = encode_query(tokenizer, " " + sym, prefix="x")  # as in running text (LLaMa: no bare "▁" first)
        if len(ids) != 1:
            raise KernelError(
                f"kernel.symbols: {sym!r} is {len(ids)} tokens ({tokenizer.convert_ids_to_tokens(ids)}) after a "
                "space for this tokenizer; pick single-token symbols"
            )
    try:
        return label_token_ids(tokenizer, chosen)
    except ValueError as exc:
        raise KernelError(f"kernel.symbols: {exc}") from exc

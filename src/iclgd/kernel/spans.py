"""Where each demonstration sits in the token sequence the model sees (Han et al. §5).

`demo_spans` locates each demonstration's input span x_i and label token y_i in the exact token
sequence that `iclgd.core.forward` feeds the model, via the tokenizer's offset mapping
(re-tokenising pieces would drift wherever BPE merges across a boundary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from iclgd.core import prompts
from iclgd.core.forward import encode_prefix, encode_query, label_token_ids


class KernelError(ValueError):
    """A prompt whose demonstrations cannot be located in the token sequence, or bad inputs."""


@dataclass
class Spans:
    """Token positions in the full prompt ids (prefix + query, as `iclgd.core.forward` encodes them).

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
    """Each demonstration's text without its trailing ' <label word>' (its zero-shot query;
    `prompts.demo_inputs`, raising KernelError)."""
    return prompts.demo_inputs(prompt_set, KernelError)


def prefix_spans(tokenizer, prompt_set: dict[str, Any]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Prefix ids and demo spans (x_start, x_end, y), computed once per prompt set (queries only
    append tokens)."""
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
    """Spans of every demonstration and of `query` in encode_prefix(prefix) + encode_query(query, prefix)."""
    ids, xs, xe, ys = prefix_spans(tokenizer, prompt_set)
    return with_query(ids, xs, xe, ys, encode_query(tokenizer, query, prompt_set["prefix"]))


def with_query(ids, xs, xe, ys, query_ids: list[int]) -> Spans:
    """The prefix's spans (from `prefix_spans`) extended by one query's ids."""
    return Spans(list(ids) + list(query_ids), xs, xe, ys, len(ids), len(ids) + len(query_ids))


def label_tokens_in_prompt(tokenizer, prompt_set: dict[str, Any]) -> bool:
    """True when the token at every demonstration's label position is the id scored for its class
    (`label_token_ids`): no merge of the label with the separator or the input changes it."""
    ids, _, _, ys = prefix_spans(tokenizer, prompt_set)
    label_ids = label_token_ids(tokenizer, prompt_set["label_words"])
    classes = list(prompt_set["classes"])
    want = [label_ids[classes.index(d["label"])] for d in prompt_set["demos"]]
    return [ids[y] for y in ys] == want

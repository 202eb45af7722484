"""Demonstration spans (iclgd.kernel.spans) against the real tokenizers (SmolLM2's byte-level BPE, LLaMa's
SentencePiece): input spans decode to the demonstrations' inputs, label positions hold the scored label tokens,
and a prefix they cannot be located in is refused."""

from __future__ import annotations

import numpy as np
import pytest

from iclgd.core import forward
from iclgd.kernel.prompt_sets import relabel_prompt_set
from iclgd.kernel.spans import KernelError, demo_spans, label_tokens_in_prompt


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spans_decode_to_label_words_and_demo_inputs(tiny, make_prompt_set, seed):
    _, tok = tiny
    ps = make_prompt_set(k=6, seed=seed)
    query = ps["queries"][1]["query"]
    spans = demo_spans(tok, ps, query)
    assert spans.ids == forward.encode_prefix(tok, ps["prefix"]) + forward.encode_query(tok, query, ps["prefix"])
    assert spans.ids == forward.encode_prefix(tok, ps["prefix"]) + forward.encode_query(tok, query)  # SmolLM2
    assert len(spans.y) == len(ps["demos"]) == 6
    words = dict(zip(ps["classes"], ps["label_words"]))
    label_ids = dict(zip(ps["label_words"], forward.label_token_ids(tok, ps["label_words"])))
    for i, demo in enumerate(ps["demos"]):
        word = words[demo["label"]]
        assert tok.decode([spans.ids[spans.y[i]]]) == " " + word
        assert spans.ids[spans.y[i]] == label_ids[word]
        decoded = tok.decode(spans.ids[spans.x_start[i] : spans.x_end[i]])
        expected = demo["text"][: -len(word) - 1]
        assert decoded.strip() == expected.strip()
        assert expected.startswith("Review: ")
    assert np.all(np.diff(spans.y) > 0) and np.all(spans.x_start[1:] > spans.y[:-1])
    assert tok.decode(spans.ids[spans.query_start : spans.query_end]) == query
    assert spans.last == len(spans.ids) - 1


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("words", [None, ["A", "B", "C"], ["foo", "bar", "baz"]])
def test_llama_spans_point_at_label_tokens_of_the_full_prompt(llama_tok, make_prompt_set, seed, words):
    """LLaMa's SentencePiece tokenizer: spans index the encoding of prefix + query (no dummy "▁" before the
    query), every demonstration's label position holds the label token scored for its class ("▁negative"),
    and its input span decodes to the demonstration's input."""
    tok = llama_tok
    ps = make_prompt_set(k=6, seed=seed)
    if words is not None:
        ps = relabel_prompt_set(ps, words)
    label_ids = dict(zip(ps["label_words"], forward.label_token_ids(tok, ps["label_words"])))
    words_of = dict(zip(ps["classes"], ps["label_words"]))
    for q in ps["queries"]:
        spans = demo_spans(tok, ps, q["query"])
        assert spans.ids == tok(ps["prefix"] + q["query"]).input_ids
        assert tok.convert_ids_to_tokens(spans.ids[spans.query_start]) != "\u2581"
        assert tok.decode(spans.ids[spans.query_start : spans.query_end]).strip() == q["query"]
        assert spans.last == len(spans.ids) - 1
    assert label_tokens_in_prompt(tok, ps)
    for i, demo in enumerate(ps["demos"]):
        word = words_of[demo["label"]]
        assert spans.ids[spans.y[i]] == label_ids[word]
        assert tok.convert_ids_to_tokens(spans.ids[spans.y[i]]) == "\u2581" + word  # single-token words here
        decoded = tok.decode(spans.ids[spans.x_start[i] : spans.x_end[i]], skip_special_tokens=True)
        assert decoded.strip() == demo["text"][: -len(word) - 1].strip()
    assert np.all(np.diff(spans.y) > 0) and np.all(spans.x_start[1:] > spans.y[:-1])


def test_spans_error_when_demo_missing_from_prefix(tiny, make_prompt_set):
    _, tok = tiny
    ps = make_prompt_set(k=3)
    ps["prefix"] = ps["prefix"].replace(ps["demos"][1]["text"], "something else")
    with pytest.raises(KernelError, match="not found in the prefix"):
        demo_spans(tok, ps, "q")


class ChunkTokenizer:
    """Fixed 3-character chunks: merges ': p' into one token, so the label token straddles the input."""

    def __call__(self, text, return_offsets_mapping=False, add_special_tokens=True):
        offsets = [(i, min(i + 3, len(text))) for i in range(0, len(text), 3)]
        enc = {"input_ids": [hash(text[a:b]) % 1000 for a, b in offsets]}
        if return_offsets_mapping:
            enc["offset_mapping"] = offsets
        return type("Enc", (dict,), {"input_ids": property(lambda self: self["input_ids"])})(enc)


def one_demo_set(text: str) -> dict:
    demo = {"uid": 0, "label": "p", "text": text}
    return {"prefix": text + "\n\n", "demos": [demo], "classes": ["p"], "label_words": ["pos"]}


def test_spans_error_when_label_token_straddles_input():
    text = "In: x pos"  # chunks 'In:', ' x ', 'pos' -> ' x ' holds the space: label token starts after it, fine
    spans = demo_spans(ChunkTokenizer(), one_demo_set(text), "")
    assert spans.y.tolist() == [2] and spans.x_start.tolist() == [0]
    bad_text = "In: xyz pos"  # chunks 'In:', ' xy', 'z p', 'os': 'z p' spans input and label word
    with pytest.raises(KernelError, match="cannot locate the label token"):
        demo_spans(ChunkTokenizer(), one_demo_set(bad_text), "")

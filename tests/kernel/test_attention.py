"""Spans against the real tokenizer and attention capture against a direct eager forward on the tiny Llama."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclgd.core import forward
from iclgd.kernel.attention import MASS_PARTS, PROFILE_LEN, _full_rows, capture, eager_attention, resample
from iclgd.kernel.prompt_sets import relabel_prompt_set
from iclgd.kernel.spans import KernelError, demo_spans, label_tokens_in_prompt

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# spans


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


def test_llama_capture_scores_as_score_prompt_set(llama_model, llama_tok, make_prompt_set):
    """The kernel capture's queries follow the demonstrations as ICL scoring encodes them: same prompt
    lengths, same label log-probs, and its attention masses match a direct forward of the prompt text."""
    model, tok = llama_model, llama_tok
    ps = make_prompt_set(k=5, n_test=3)
    cap = capture(model, tok, ps)
    frame = forward.score_prompt_set(model, tok, ps, batch_size=2)
    assert cap.n_tokens.tolist() == frame["n_tokens"].tolist()
    np.testing.assert_allclose(cap.label_logprobs, np.stack(frame["label_logprobs"]), atol=1e-4)
    for qi, q in enumerate(ps["queries"]):
        ids = tok(ps["prefix"] + q["query"]).input_ids
        spans = demo_spans(tok, ps, q["query"])
        with eager_attention(model), torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_attentions=True)
        row = torch.stack([att[0, :, -1, :] for att in out.attentions]).numpy()
        np.testing.assert_allclose(cap.mass[qi, ..., MASS_PARTS.index("label")], row[..., spans.y].sum(-1), atol=1e-5)


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


# ---------------------------------------------------------------------------------------------
# capture


@pytest.fixture(scope="module")
def captured(tiny, make_prompt_set):
    model, tok = tiny
    ps = make_prompt_set(k=5, n_test=3)
    before = model.config._attn_implementation
    cap = capture(model, tok, ps)
    assert model.config._attn_implementation == before  # restored
    return ps, cap


def test_capture_shapes_and_mass_partition(tiny, captured):
    model, _ = tiny
    ps, cap = captured
    L, H, Q, n = model.config.num_hidden_layers, model.config.num_attention_heads, 3, 5
    assert cap.profile.shape == (Q, L, H, n, PROFILE_LEN)
    assert cap.mass.shape == (Q, L, H, len(MASS_PARTS))
    assert cap.a.shape == (Q, L, H, n)
    assert cap.label_logprobs.shape == (Q, 3) and cap.pred.shape == (Q,)
    assert all(x.dtype == np.float32 for x in (cap.profile, cap.mass, cap.a, cap.label_logprobs))
    np.testing.assert_allclose(cap.mass.sum(-1), 1.0, atol=1e-5)
    assert (cap.mass >= 0).all() and (cap.mass[..., MASS_PARTS.index("label")] > 0).all()
    assert cap.gold.tolist() == [ps["classes"].index(q["label"]) for q in ps["queries"]]
    assert cap.demo_labels.tolist() == [ps["classes"].index(d["label"]) for d in ps["demos"]]


def test_capture_matches_direct_eager_forward(tiny, captured):
    model, tok = tiny
    ps, cap = captured
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    for qi, q in enumerate(ps["queries"]):
        spans = demo_spans(tok, ps, q["query"])
        assert cap.n_tokens[qi] == len(spans.ids)
        with eager_attention(model), torch.no_grad():
            out = model(input_ids=torch.tensor([spans.ids]), output_attentions=True)
        row = torch.stack([att[0, :, -1, :] for att in out.attentions]).numpy()  # (L, H, T)
        np.testing.assert_allclose(row.sum(-1), 1.0, atol=1e-5)
        for i in range(len(spans.y)):
            xs, xe, y = spans.x_start[i], spans.x_end[i], spans.y[i]
            np.testing.assert_allclose(cap.a[qi, ..., i], row[..., xs : y + 1].max(-1), atol=1e-6)
            np.testing.assert_allclose(cap.profile[qi, ..., i, 0], row[..., xs], atol=1e-6)
            np.testing.assert_allclose(cap.profile[qi, ..., i, -1], row[..., xe - 1], atol=1e-6)
        np.testing.assert_allclose(cap.mass[qi, ..., MASS_PARTS.index("start")], row[..., 0], atol=1e-6)
        np.testing.assert_allclose(
            cap.mass[qi, ..., MASS_PARTS.index("label")], row[..., spans.y].sum(-1), atol=1e-5
        )
        np.testing.assert_allclose(
            cap.mass[qi, ..., MASS_PARTS.index("query")],
            row[..., spans.query_start :].sum(-1),
            atol=1e-5,
        )
        logp = torch.log_softmax(out.logits[0, -1], -1)[label_ids].numpy()
        np.testing.assert_allclose(cap.label_logprobs[qi], logp, atol=1e-4)


def test_resample_is_linear_interpolation():
    vals = np.array([[0.0, 1.0, 4.0]])
    got = resample(vals, 5)
    np.testing.assert_allclose(got, [[0.0, 0.5, 1.0, 2.5, 4.0]])
    np.testing.assert_allclose(resample(np.array([2.0]), 4), [2.0] * 4)


def test_sliding_window_rows_are_right_aligned():
    """Gemma 3's local layers return attention over the last keys only; older keys get weight 0."""
    full = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    local = torch.tensor([[0.25, 0.75]])
    rows = _full_rows([full, local], 4)
    assert rows.shape == (2, 1, 4)
    np.testing.assert_allclose(rows[1, 0], [0.0, 0.0, 0.25, 0.75])
    np.testing.assert_allclose(rows[0, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(KernelError, match="attends to 5 keys"):
        _full_rows([torch.ones(1, 5)], 4)

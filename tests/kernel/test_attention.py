"""Attention capture (iclgd.kernel.attention) against a direct eager forward on the tiny Llama and LLaMa's
tokenizer, the resampled profiles and sliding-window rows (the spans it reads: test_spans.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclgd.core import forward
from iclgd.kernel.attention import MASS_PARTS, PROFILE_LEN, _full_rows, capture, eager_attention, resample
from iclgd.kernel.spans import KernelError, demo_spans

torch.set_num_threads(1)


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

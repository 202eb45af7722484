"""Dai et al.'s capture against an independent eager computation (tiny Llama, and a tiny Gemma 3 with
sliding-window layers and grouped-query attention); recording leaves the model's output unchanged."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from iclgd.core import forward
from iclgd.dai.capture import DaiCapture, capture, decoder_layers, recording_attention

torch.set_num_threads(1)


def reference(model, ids: list[int], n_query: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Per layer from one plain eager forward (no cache, no self_attn hook): the last token's attention
    output o_proj(A_last · V) and its attention weights over the last n_query positions, renormalised."""
    values: dict[int, torch.Tensor] = {}
    layers = decoder_layers(model)
    hooks = [
        layer.self_attn.v_proj.register_forward_hook(lambda _m, _i, out, i=i: values.__setitem__(i, out.detach()))
        for i, layer in enumerate(layers)
    ]
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")  # sdpa returns no attention weights
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    finally:
        model.set_attn_implementation(before)
        for h in hooks:
            h.remove()
    outs, weights = [], []
    for i, layer in enumerate(layers):
        attn = out.attentions[i][0, :, -1, :]  # (H, T)
        n_heads = attn.shape[0]
        v = values[i][0].view(len(ids), -1, layer.self_attn.head_dim)  # (T, KVH, d)
        v = v.repeat_interleave(n_heads // v.shape[1], dim=1)  # (T, H, d)
        mixed = torch.einsum("ht,thd->hd", attn, v).reshape(-1)
        outs.append(layer.self_attn.o_proj(mixed).detach().numpy())
        w = attn[:, -n_query:]
        weights.append((w / w.sum(-1, keepdim=True)).numpy())
    return np.stack(outs), np.stack(weights), out.logits[0, -1]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def check_capture(model, tok, prefix: str, texts: list[str], label_ids: list[int]) -> DaiCapture:
    before = model.config._attn_implementation
    cap = capture(model, tok, prefix, texts, label_ids)
    assert model.config._attn_implementation == before  # restored
    L = len(decoder_layers(model))
    H = model.config.num_attention_heads
    assert cap.outputs.shape == (len(texts), L, model.config.hidden_size)
    assert cap.scores.shape == (len(texts), L, H, int(cap.n_query.max()))
    for qi, text in enumerate(texts):
        ids = forward.encode_prefix(tok, prefix) + forward.encode_query(tok, text, prefix)
        n_q = int(cap.n_query[qi])
        assert n_q == len(forward.encode_query(tok, text, prefix)) and cap.n_tokens[qi] == len(ids)
        outs, weights, logits = reference(model, ids, n_q)
        np.testing.assert_allclose(cap.outputs[qi], outs, atol=2e-5)
        np.testing.assert_allclose(softmax(cap.scores[qi, ..., -n_q:]), weights, atol=2e-5)
        assert (cap.scores[qi, ..., : cap.scores.shape[-1] - n_q] == 0).all()  # left padding
        np.testing.assert_allclose(cap.label_logprobs[qi], torch.log_softmax(logits, -1)[label_ids].numpy(), atol=1e-4)
    return cap


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_capture_matches_eager_forward_llama(tiny, dai_prompt_sets, impl):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    model.set_attn_implementation(impl)
    ps = dai_prompt_sets(ks=(3,))[0]
    texts = [q["query"] for q in ps["queries"]]
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    cap = check_capture(model, tok, ps["prefix"], texts, label_ids)
    zs = check_capture(model, tok, "", texts, label_ids)
    assert not np.allclose(cap.outputs, zs.outputs)  # the demonstrations change the last token's attention


@pytest.mark.parametrize("k", [0, 3])
def test_llama_capture_sees_the_prompt_text_and_scores_as_icl(llama_model, llama_tok, dai_prompt_sets, k):
    """LLaMa's SentencePiece tokenizer: the captured prompt is the encoding of prefix + query (no dummy "▁"
    in front of the query after the demonstrations), so capture and ICL scoring see the same tokens."""
    model, tok = copy.deepcopy(llama_model), llama_tok
    ps = dai_prompt_sets(ks=(k,))[0]
    texts = [q["query"] for q in ps["queries"]]
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    cap = check_capture(model, tok, ps["prefix"], texts, label_ids)
    for qi, text in enumerate(texts):
        full = tok(ps["prefix"] + text).input_ids
        assert forward.encode_prefix(tok, ps["prefix"]) + forward.encode_query(tok, text, ps["prefix"]) == full
        assert cap.n_tokens[qi] == len(full)
    frame = forward.score_prompt_set(model, tok, ps, batch_size=2)
    np.testing.assert_allclose(cap.label_logprobs, np.stack(frame["label_logprobs"]), atol=1e-4)
    assert cap.n_tokens.tolist() == frame["n_tokens"].tolist()


def tiny_gemma3(tok, window: int):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=8, sliding_window=window,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], max_position_embeddings=4096,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    return Gemma3ForCausalLM(config).eval()


def test_capture_matches_eager_forward_gemma3_sliding_window_and_gqa(tiny, dai_prompt_sets):
    tok = tiny[1]
    model = tiny_gemma3(tok, window=16)
    ps = dai_prompt_sets(ks=(3,))[0]
    texts = [q["query"] for q in ps["queries"]]
    assert max(len(forward.encode_query(tok, t)) for t in texts) < 16  # queries inside the window
    assert len(forward.encode_prefix(tok, ps["prefix"])) > 16  # the prefix reaches past it
    check_capture(model, tok, ps["prefix"], texts, forward.label_token_ids(tok, ps["label_words"]))


def test_recording_leaves_the_model_output_unchanged(tiny):
    model, tok = tiny
    ids = torch.tensor([forward.encode_query(tok, "Review: a fine film\nSentiment:")])
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with recording_attention(model) as recorder:
            recorded = model(input_ids=ids).logits
    torch.testing.assert_close(recorded, plain)
    assert sorted(recorder.rows) == list(range(model.config.num_hidden_layers))

"""Scoring against a direct transformers forward on the tiny Llama; KV-prefix reuse equality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclgd.core import forward

PREFIX = "Review: a gem of a film\nSentiment: positive\n\nReview: dull and flat\nSentiment: negative\n\n"
QUERIES = [
    "Review: fine\nSentiment:",
    "Review: an utterly, completely, entirely forgettable two hours of nothing much\nSentiment:",
    "Review: good acting, weak plot\nSentiment:",
    "Review: great\nSentiment:",
    "Review: not bad at all, though the ending drags on and on\nSentiment:",
]


def direct_logprobs(model, tokenizer, prefix: str, query: str) -> torch.Tensor:
    """The answer-position log-probs from one plain transformers forward of the whole prompt."""
    ids = tokenizer(prefix).input_ids + tokenizer(query, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), -1)


@pytest.mark.parametrize("prefix", ["", PREFIX])
@pytest.mark.parametrize("batch_size,batch_tokens", [(1, 1024), (2, 1024), (16, 1024), (16, 20)])
def test_cached_scores_match_direct_forward(tiny, prefix, batch_size, batch_tokens):
    model, tok = tiny
    labels = forward.label_token_ids(tok, ["positive", "negative"])
    got = forward.score_queries(model, tok, prefix, QUERIES, labels, batch_size, batch_tokens=batch_tokens)
    for i, query in enumerate(QUERIES):
        ref = direct_logprobs(model, tok, prefix, query)
        np.testing.assert_allclose(got["label_logprobs"][i], ref[labels].numpy(), atol=1e-4)
        assert got["argmax_id"][i] == int(ref.argmax())
        top = ref.topk(forward.TOPK)
        np.testing.assert_array_equal(got["top10_ids"][i], top.indices.numpy())
        np.testing.assert_allclose(got["top10_probs"][i], top.values.exp().numpy(), atol=1e-5)


def test_score_full_is_the_direct_forward(tiny):
    model, tok = tiny
    labels = forward.label_token_ids(tok, ["positive", "negative"])
    ids = tok(PREFIX).input_ids + tok(QUERIES[1], add_special_tokens=False).input_ids
    got = forward.score_full(model, ids, labels)
    ref = direct_logprobs(model, tok, PREFIX, QUERIES[1])
    np.testing.assert_allclose(got["label_logprobs"][0], ref[labels].numpy(), atol=1e-5)


def test_n_tokens_counts_prefix_and_query(tiny):
    model, tok = tiny
    labels = forward.label_token_ids(tok, ["positive", "negative"])
    got = forward.score_queries(model, tok, PREFIX, QUERIES[:2], labels)
    n_prefix = len(tok(PREFIX).input_ids)
    assert list(got["n_tokens"]) == [n_prefix + len(tok(q, add_special_tokens=False).input_ids) for q in QUERIES[:2]]


@pytest.mark.parametrize(
    "lengths,rows,tokens,expected",
    [
        ([1, 2, 3, 4], 2, 100, [(0, 2), (2, 4)]),
        ([5, 5, 5, 20], 8, 16, [(0, 3), (3, 4)]),  # 3 rows x 5 = 15 fits; 4 x 20 does not
        ([50, 60], 8, 10, [(0, 1), (1, 2)]),  # over-long queries still get a batch each
        ([], 4, 10, []),
    ],
)
def test_length_batches(lengths, rows, tokens, expected):
    assert forward.length_batches(lengths, rows, tokens) == expected


def test_label_words_sharing_a_first_token_are_refused(tiny):
    _, tok = tiny
    with pytest.raises(forward.ScoringError, match="share a first token"):
        forward.label_token_ids(tok, ["xylophone", "xylophones"])


def test_records_frame_schema(tiny):
    model, tok = tiny
    prompt_set = {
        "dataset": "toy", "k": 2, "seed": 1, "prefix": PREFIX, "classes": ["pos", "neg"],
        "label_words": ["positive", "negative"],
        "queries": [{"uid": i, "label": "pos" if i % 2 else "neg", "query": q} for i, q in enumerate(QUERIES)],
    }
    frame = forward.score_prompt_set(model, tok, prompt_set, tags={"model": "tiny"})
    assert list(frame.columns) == forward.RECORD_COLUMNS
    assert frame["label_index"].tolist() == [1, 0, 1, 0, 1]
    picked = np.stack(frame["label_logprobs"]).argmax(1)
    assert frame["pred_index"].tolist() == picked.tolist()
    assert (frame["method"] == "icl").all() and (frame["model"] == "tiny").all()


def test_byte_level_bpe_keeps_first_token_of_space_word_and_ignores_the_prefix(tiny):
    """SmolLM2 has no SentencePiece dummy prefix: label ids stay the first token of ' word' for every
    dataset's verbalizer, and a query's ids do not depend on the prefix it follows (test_llama_tokenizer
    covers the LLaMa side)."""
    from pathlib import Path

    import yaml

    _, tok = tiny
    assert forward.dummy_prefix_id(tok) is None
    registry = Path(__file__).resolve().parents[2] / "config" / "datasets.yaml"
    for spec in yaml.safe_load(registry.read_text()).values():
        words = [spec["verbalizer"][c] for c in spec["classes"]]
        first = [tok(" " + w, add_special_tokens=False).input_ids[0] for w in words]
        assert forward.label_token_ids(tok, words) == first
    for query in QUERIES:
        alone = tok(query, add_special_tokens=False).input_ids
        assert forward.encode_query(tok, query, PREFIX) == forward.encode_query(tok, query) == alone


# --------------------------------------------------------------------------- context window


def window_model(tok, window: int = 32):
    """A random Llama on `tok`'s vocabulary whose max_position_embeddings is `window`."""
    from transformers import LlamaForCausalLM

    from iclgd.core import models

    torch.manual_seed(0)
    config = models.tiny_config(len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, 1, 32, 2)
    config.max_position_embeddings = window
    config.name_or_path = "tiny-window"
    return LlamaForCausalLM(config).eval()


def text_of(tok, n: int) -> str:
    """"a a a ...": exactly n tokens (byte-level BPE splits every " a"; SmolLM2 adds no BOS)."""
    text = " ".join(["a"] * n)
    assert len(tok(text).input_ids) == n
    return text


def window_prompt_set(tok, n_prefix: int, n_query: int) -> dict:
    """A one-query prompt set of n_prefix + n_query tokens (SmolLM2 encodes a query alone)."""
    ps = {"dataset": "toy", "k": 1, "seed": 0, "prefix": text_of(tok, n_prefix) + "\n\n" * bool(n_prefix),
          "classes": ["n", "p"], "label_words": ["negative", "positive"],
          "queries": [{"uid": 0, "label": "p", "query": text_of(tok, n_query)}]}
    assert len(forward.encode_prefix(tok, ps["prefix"])) == n_prefix + bool(n_prefix)  # "\n\n" is one token
    return ps


@pytest.mark.parametrize("n_prefix", [0, 16])
def test_score_prompt_set_refuses_prompts_past_the_context_window(tiny, n_prefix):
    """max_position_embeddings = 32: a 32-token prompt is scored, a 40-token one refused (with a reused
    prefix cache, the prefix's tokens count too)."""
    tok = tiny[1]
    model = window_model(tok, 32)
    sep = bool(n_prefix)  # the prefix's final "\n\n"
    fits = window_prompt_set(tok, n_prefix, 32 - n_prefix - sep)
    assert forward.score_prompt_set(model, tok, fits)["n_tokens"].tolist() == [32]
    long = window_prompt_set(tok, n_prefix, 40 - n_prefix - sep)
    with pytest.raises(forward.ScoringError, match=r"prompt of 40 tokens exceeds tiny-window's context window of "
                                                   r"32 \(max_position_embeddings\).*README 'Context length'"):
        forward.score_prompt_set(model, tok, long)


def test_long_shared_prefix_and_score_full_are_refused(tiny):
    tok = tiny[1]
    model = window_model(tok, 32)
    with pytest.raises(forward.ScoringError, match="shared prefix: prompt of 33 tokens"):
        forward.score_prompt_set(model, tok, window_prompt_set(tok, 32, 3))
    forward.score_full(model, list(range(10, 42)), [1, 2])
    with pytest.raises(forward.ScoringError, match="score_full: prompt of 33 tokens"):
        forward.score_full(model, list(range(10, 43)), [1, 2])


def test_context_window_reads_nested_configs_and_skips_models_without_one():
    from types import SimpleNamespace

    from transformers import Gemma3Config, LlamaConfig

    gemma = SimpleNamespace(config=Gemma3Config(text_config={"max_position_embeddings": 48}))
    assert forward.context_window(gemma) == 48
    forward.check_length(gemma, 48, "x")
    with pytest.raises(forward.ScoringError, match="49 tokens .* window of 48"):
        forward.check_length(gemma, 49, "x")
    assert forward.context_window(SimpleNamespace(config=LlamaConfig(max_position_embeddings=7))) == 7
    no_window = SimpleNamespace(config=SimpleNamespace())
    assert forward.context_window(no_window) is None
    forward.check_length(no_window, 10**9, "x")  # nothing to check against

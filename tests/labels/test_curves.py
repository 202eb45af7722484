"""All-positions read-out against per-prefix forwards, answer positions, metrics and summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

from iclgd.labels import curves

from iclgd.labels import conditions as labels
from iclgd.core import forward, prompts, stats

TEMPLATE = "Review: {text}\nSentiment:"
ROWS = [
    {"text": "a gem of a film", "label": "positive"},
    {"text": "dull , flat and far too long", "label": "negative"},
    {"text": "great", "label": "positive"},
    {"text": "it 's not bad at all , though the ending drags", "label": "positive"},
    {"text": "forgettable", "label": "negative"},
]
WORDS = ["negative", "positive"]
SPEC = {"name": "toy", "template": TEMPLATE, "classes": ["negative", "positive"],
        "verbalizer": {"negative": "negative", "positive": "positive"}}


def queries(rows):
    return [TEMPLATE.format(**r) for r in rows]


def _render_context(template, rows, words, instruction=""):
    """The whole text `curves.encode_context` encodes piece by piece: the instruction, then each rendered
    query followed by ' ' + its label word, joined by the demonstration separator."""
    demos = [f"{prompts.render_query(template, r)} {w}" for r, w in zip(rows, words)]
    return prompts.DEMO_SEPARATOR.join(([instruction] if instruction else []) + demos)


@pytest.mark.parametrize("instruction", ["", labels.flip_instruction(WORDS)])
def test_answer_positions_match_the_tokenizer(tiny, instruction):
    _, tok = tiny
    shown = ["positive", "negative", "negative", "positive", "A"]  # one replacement word too
    ctx = curves.encode_context(tok, queries(ROWS), shown, instruction)
    text = _render_context(TEMPLATE, ROWS, shown, instruction)
    assert ctx.ids == tok(text).input_ids  # piecewise ids are the tokenizer's ids of the whole text
    for pos, word in zip(ctx.answer_positions, shown):
        assert tok.decode(ctx.ids[pos]).endswith(":")  # the token just before each label word
        assert tok.decode(ctx.ids[: pos + 1]).endswith("Sentiment:")
        assert ctx.ids[pos + 1] == forward.label_token_ids(tok, [word])[0]


def prefix_logprobs(model, ids, pos, label_ids):
    """Reference: a separate forward of the prefix up to and including the answer position."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids[: pos + 1]])).logits[0, -1]
    return torch.log_softmax(logits[label_ids].float(), -1).numpy()


def test_all_position_readout_equals_prefix_forwards(tiny):
    model, tok = tiny
    label_ids = forward.label_token_ids(tok, WORDS)
    contexts = [
        curves.encode_context(tok, queries(ROWS), ["positive", "negative", "positive", "positive", "negative"]),
        curves.encode_context(tok, queries(ROWS[::-1]), ["negative"] * 5, labels.flip_instruction(WORDS)),
        curves.encode_context(tok, queries(ROWS[1:3] * 2 + ROWS[:1]), ["positive"] * 5),
    ]
    got = curves.all_position_logprobs(model, contexts, label_ids, batch_size=2, pad_id=tok.pad_token_id)
    assert got.shape == (3, 5, 2)
    for c, ctx in enumerate(contexts):
        for i, pos in enumerate(ctx.answer_positions):
            np.testing.assert_allclose(got[c, i], prefix_logprobs(model, ctx.ids, pos, label_ids), atol=1e-4)
    np.testing.assert_allclose(np.exp(got).sum(-1), 1, atol=1e-5)


# --------------------------------------------------------------------------- LLaMa (SentencePiece dummy prefix)

DATASETS = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "datasets.yaml").read_text())
#: Demonstration texts that stress piecewise encoding: leading/trailing spaces, digits, non-ASCII, newlines.
TEXTS = ["a gripping film .", "  leading spaces", "trailing space ", "3 dead as \"storm\" hits Zürich",
         "naïve, yet 🙂 fun", "it 's 100% great!", "line one\nline two", "dull"]
#: Replacement words by class index (up to dbpedia's 14 classes).
LETTERS = [chr(ord("A") + i) for i in range(14)]
FOO = ["foo", "bar", "baz", "qux", "zap", "zip", "wug", "dax", "blick", "fep", "toma", "lorp", "mib", "gazzer"]


def old_encode_context(tokenizer, queries, words, instruction=""):
    """`encode_context` before it passed the text so far as `prefix` (every piece encoded on its own)."""
    ids = forward.encode_prefix(tokenizer, instruction)
    answers = []
    for i, (query, word) in enumerate(zip(queries, words)):
        sep = prompts.DEMO_SEPARATOR if i > 0 or instruction else ""
        ids = ids + tokenizer(sep + query, add_special_tokens=False).input_ids
        answers.append(len(ids) - 1)
        ids = ids + tokenizer(" " + word, add_special_tokens=False).input_ids
    return curves.Context(ids, answers)


def dataset_contexts(name: str, n_demos: int = 33):
    """(queries, rows, word lists, instructions) for a context of `n_demos` made-up demonstrations of `name`."""
    spec = DATASETS[name]
    n = len(spec["classes"])
    rows = [{f: TEXTS[(i + 3 * j) % len(TEXTS)] for j, f in enumerate(spec["fields"])} for i in range(n_demos)]
    qs = [prompts.render_query(spec["template"], r) for r in rows]
    shown = np.random.default_rng(len(name)).integers(0, n, n_demos)
    word_sets = [[spec["verbalizer"][c] for c in spec["classes"]], LETTERS[:n], LETTERS[:n][::-1], FOO[:n]]
    return spec, rows, qs, [[w[i] for i in shown] for w in word_sets]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_llama_piecewise_ids_are_the_full_text_ids(llama_tok, name):
    """On LLaMa, every piece after the first used to get SentencePiece's dummy "▁" ("Sentiment: ▁ ▁positive ▁
    \\n\\nReview"); now the piecewise ids are exactly the tokenizer's ids of the whole rendered text (BOS
    included), and the token after each answer position is the label token scored for its word."""
    tok = llama_tok
    spec, rows, qs, word_lists = dataset_contexts(name)
    for shown in word_lists:
        for instruction in ["", labels.flip_instruction(sorted(set(shown)))]:
            ctx = curves.encode_context(tok, qs, shown, instruction)
            full = tok(_render_context(spec["template"], rows, shown, instruction)).input_ids
            assert full[0] == tok.bos_token_id
            assert ctx.ids == full, (shown[:3], instruction)
            assert old_encode_context(tok, qs, shown, instruction).ids != full  # the bug this guards against
            assert len(ctx.answer_positions) == len(qs)
            cue = spec["template"].rsplit("\n", 1)[-1].rstrip()  # "Sentiment:", "Answer:", ...
            for pos, word in zip(ctx.answer_positions, shown):
                assert ctx.ids[pos + 1] == forward.label_token_ids(tok, [word])[0]
                assert tok.decode(ctx.ids[: pos + 1], skip_special_tokens=True).endswith(cue)
                assert tok.convert_ids_to_tokens(ctx.ids[pos + 1]) != "\u2581"


@pytest.mark.parametrize("name", ["sst2", "agnews", "cb", "trec", "dbpedia"])
def test_smollm2_ids_are_unchanged(tiny, name):
    """Byte-level BPE ignores the prefix: ids and answer positions bitwise as the old piecewise encoding's."""
    _, tok = tiny
    spec, rows, qs, word_lists = dataset_contexts(name)
    for shown in word_lists:
        for instruction in ["", labels.flip_instruction(sorted(set(shown)))]:
            ctx = curves.encode_context(tok, qs, shown, instruction)
            assert ctx == old_encode_context(tok, qs, shown, instruction)


def window_llama(vocab: int = 64, window: int = 32) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=window)
    config.name_or_path = "tiny-window"
    return LlamaForCausalLM(config).eval()


def test_all_position_logprobs_refuses_contexts_past_the_context_window():
    model = window_llama(window=32)
    fits = curves.Context(list(range(3, 35)), [9, 20, 31])  # 32 tokens
    long = curves.Context(list(range(3, 43)), [9, 20, 39])  # 40 tokens
    assert curves.all_position_logprobs(model, [fits], [1, 2], batch_size=2).shape == (1, 3, 2)
    with pytest.raises(forward.ScoringError, match=r"40 tokens exceeds tiny-window's context window of 32"):
        curves.all_position_logprobs(model, [fits, long], [1, 2], batch_size=2)


def test_position_metrics_on_hand_computed_logprobs():
    logp = np.log(np.array([[[0.7, 0.3], [0.5, 0.5]], [[0.2, 0.8], [0.1, 0.9]]]))
    true = np.array([[0, 1], [0, 1]])
    shown = np.array([[1, 0], [1, 1]])
    got = curves.position_metrics(logp, true, shown)
    assert got["correct"].tolist() == [[True, False], [False, True]]  # tie goes to class 0
    assert got["agree_presented"].tolist() == [[False, True], [True, True]]
    np.testing.assert_allclose(got["loglik"], np.log([[0.7, 0.5], [0.2, 0.9]]))
    np.testing.assert_allclose(got["loglik_presented"], np.log([[0.3, 0.5], [0.8, 0.9]]))
    h = lambda p: -sum(x * np.log(x) for x in p)  # noqa: E731
    np.testing.assert_allclose(got["entropy"], [[h([0.7, 0.3]), np.log(2)], [h([0.2, 0.8]), h([0.1, 0.9])]])
    three = curves.position_metrics(np.log(np.full((1, 3), 1 / 3)), np.array([2]), np.array([0]))
    np.testing.assert_allclose(three["entropy"], [np.log(3)])
    assert three["correct"].tolist() == [False] and three["agree_presented"].tolist() == [True]


def test_run_curves_table(tiny, curves_block):
    model, tok = tiny
    train = pd.DataFrame([{"uid": i, **r} for i, r in enumerate(ROWS)])
    cfg = {**curves_block, "n_demos": 5, "repetitions": 3, "batch_size": 2, "replacement_words": [["A", "B"]]}
    table = curves.run_curves(model, tok, train, SPEC, cfg, model_name="tiny")
    assert list(table.columns) == curves.CURVE_COLUMNS
    names = [c.name for c in labels.build_conditions(cfg, 2)]
    assert table["condition"].unique().tolist() == names and len(table) == len(names) * 3 * 5
    by = table.set_index(["condition", "repetition", "position"]).sort_index()
    # every condition of one repetition sees the same demonstrations and true labels
    for name in names:
        assert by.loc[name, "label"].tolist() == by.loc["default", "label"].tolist()
    flipped = by.loc["flipped"]
    assert (flipped["presented"] == 1 - flipped["label"]).all()
    assert (flipped["correct"] != flipped["agree_presented"]).all()
    again = curves.run_curves(model, tok, train, SPEC, cfg, model_name="tiny")
    pd.testing.assert_frame_equal(table, again)


P_TRUE = {"default": 0.9, "flipped_to_default": 0.8, "alternating": 0.6}  # others: 0.4 (predict class 1)


def synthetic_table(n=5, reps=4):
    """True class always 0; p(class 0) by condition as if the model followed the most recent labels; cp=2."""
    rows = []
    true = np.zeros(n, int)
    for cond in ["default", "random", "flipped", "default_to_flipped", "flipped_to_default", "alternating"]:
        shown = labels.presented_labels(labels.Condition(cond, cond, change_point=2), true, 2, np.random.default_rng(0))
        p = P_TRUE.get(cond, 0.4)
        logp = np.log(np.tile([p, 1 - p], (reps, n, 1)))
        rows.append(curves.curve_frame(logp, np.tile(true, (reps, 1)), np.tile(shown, (reps, 1)),
                                       {"model": "m", "dataset": "d", "condition": cond}, range(reps)))
    return pd.concat(rows, ignore_index=True)


def test_aggregate_and_bootstrap():
    table = synthetic_table()
    agg = curves.aggregate(table, n_boot=200, ci=0.95, seed=0)
    assert len(agg) == 6 * 5 and set(agg["n"]) == {4}
    default = agg[agg["condition"] == "default"]
    assert (default["correct"] == 1).all() and (default["correct_lo"] == 1).all()
    np.testing.assert_allclose(default["loglik"], np.log(0.9))
    mean, lo, hi = stats.bootstrap_ci(np.array([[0.0, 1], [1, 1], [0, 1], [1, 1]]), 500, 0.95, 0, axis=0)
    assert mean.tolist() == [0.5, 1] and lo[0] < 0.5 < hi[0] and lo[1] == hi[1] == 1


def test_claims(curves_block):
    table = synthetic_table()
    pos, counts = curves.recency_position(table)
    assert pos == 5 and counts == {c: (2, 2) for c in curves.RECENCY}  # seen 2 default + 2 flipped
    out = curves.claims(table, {**curves_block, "skip_first": 1, "last_window": 2}, n_boot=200, ci=0.95, seed=0)
    out = out.set_index(["claim", "condition", "contrast", "metric"])
    gap = out.loc[("labels_matter", "random", "default - random", "correct")]
    assert gap["value"] == 1 and gap["positions"] == "2-5"
    loglik_gap = out.loc[("labels_matter", "random", "default - random", "loglik"), "value"]
    np.testing.assert_allclose(loglik_gap, np.log(0.9 / 0.4))
    learned = out.loc[("flip_learned", "flipped", "last - position 1", "agree_presented")]
    assert learned["value"] == 0 and learned["positions"] == "4-5 vs 1"
    assert out.loc[("flip_learned", "flipped", "default correct - flipped", "agree_presented"), "value"] == 0
    rec = out.loc[("recency", "default_to_flipped", "seen 2 default, 2 flipped", "correct")]
    assert rec["value"] == 0 and rec["positions"] == "5"
    assert out.loc[("recency", "flipped_to_default", "seen 2 default, 2 flipped", "correct"), "value"] == 1
    recency_gap = out.loc[("recency", "default_to_flipped", "D->F - F->D", "loglik"), "value"]
    np.testing.assert_allclose(recency_gap, np.log(0.4 / 0.8))

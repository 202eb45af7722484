"""All-positions read-out against per-prefix forwards, answer positions, metrics and summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from iclgd.label_relationships import curves, labels
from iclgd.core import forward, stats

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


@pytest.mark.parametrize("instruction", ["", labels.flip_instruction(WORDS)])
def test_answer_positions_match_the_tokenizer(tiny, instruction):
    _, tok = tiny
    shown = ["positive", "negative", "negative", "positive", "A"]  # one replacement word too
    ctx = curves.encode_context(tok, queries(ROWS), shown, instruction)
    text = curves.render_context(TEMPLATE, ROWS, shown, instruction)
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

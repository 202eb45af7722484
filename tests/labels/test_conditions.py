"""Label conditions produce exactly the intended in-context label sequences; streams are stable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iclgd.labels import conditions as labels
from iclgd.labels.conditions import Condition

BINARY = np.array([0, 1, 1, 0, 1, 0])
TERNARY = np.array([0, 1, 2, 2, 1, 0])

#: The paper's replacement words (config/paper.yaml); `words` keeps the lists that match the class count.
PAPER_WORDS = [["A", "B"], ["B", "A"], ["green", "blue"], ["blue", "green"], ["sea", "chair"], ["chair", "sea"],
               ["A", "B", "C"], ["no", "ok", "yes"], ["blue", "green", "yellow"], ["A", "B", "C", "D"]]

EXPECTED = {
    # condition: (binary, 3-class) presented sequences for the fixed true sequences above
    Condition("default", "default"): ([0, 1, 1, 0, 1, 0], [0, 1, 2, 2, 1, 0]),
    Condition("words:A/B", "words", words=("A", "B")): ([0, 1, 1, 0, 1, 0], [0, 1, 2, 2, 1, 0]),
    Condition("flipped", "flipped"): ([1, 0, 0, 1, 0, 1], [1, 2, 0, 0, 2, 1]),
    Condition("instructed_flipped", "instructed_flipped"): ([1, 0, 0, 1, 0, 1], [1, 2, 0, 0, 2, 1]),
    Condition("default_to_flipped", "default_to_flipped", change_point=3): ([0, 1, 1, 1, 0, 1], [0, 1, 2, 0, 2, 1]),
    Condition("flipped_to_default", "flipped_to_default", change_point=3): ([1, 0, 0, 0, 1, 0], [1, 2, 0, 2, 1, 0]),
    Condition("alternating", "alternating", block_size=1): ([0, 0, 1, 1, 1, 1], [0, 2, 2, 0, 1, 1]),
    Condition("alternating", "alternating", block_size=2): ([0, 1, 0, 1, 1, 0], [0, 1, 0, 0, 1, 0]),
}


@pytest.mark.parametrize("condition", list(EXPECTED), ids=lambda c: f"{c.name}-{c.block_size}")
def test_presented_labels(condition):
    binary, ternary = EXPECTED[condition]
    rng = np.random.default_rng(0)
    assert labels.presented_labels(condition, BINARY, 2, rng).tolist() == binary
    assert labels.presented_labels(condition, TERNARY, 3, rng).tolist() == ternary


def test_random_labels_are_uniform_draws_from_the_condition_stream():
    cond = Condition("random", "random")
    got = labels.presented_labels(cond, TERNARY, 3, labels.label_rng("sst2", "random", 6, 0, 4))
    again = labels.presented_labels(cond, TERNARY, 3, labels.label_rng("sst2", "random", 6, 0, 4))
    assert got.tolist() == again.tolist()
    assert got.tolist() == labels.label_rng("sst2", "random", 6, 0, 4).integers(3, size=6).tolist()
    many = labels.presented_labels(cond, np.zeros(3000, int), 3, np.random.default_rng(1))
    assert set(many.tolist()) == {0, 1, 2} and abs(np.mean(many == 0) - 1 / 3) < 0.03


def test_streams_differ_by_repetition_condition_and_dataset():
    draws = {
        key: labels.label_rng(*key).integers(1 << 30, size=4).tolist()
        for key in [("sst2", "random", 8, 0, 0), ("sst2", "random", 8, 0, 1), ("sst2", "flipped", 8, 0, 0),
                    ("rte", "random", 8, 0, 0)]
    }
    assert len({tuple(v) for v in draws.values()}) == len(draws)
    assert labels.demo_rng("sst2", 8, 0, 3).integers(1000) == labels.demo_rng("sst2", 8, 0, 3).integers(1000)


def test_flip_instruction_says_which_word_means_which():
    assert labels.flip_instruction(["negative", "positive"]) == (
        "In the following, 'negative' means 'positive' and 'positive' means 'negative'."
    )
    # rotation shows class c as word c + 1, so word c + 1 means class c
    three = "In the following, 'a' means 'c', 'b' means 'a' and 'c' means 'b'."
    assert labels.flip_instruction(["a", "b", "c"]) == three
    assert labels.instruction(Condition("flipped", "flipped"), ["x", "y"]) == ""


def test_build_conditions_expands_families_per_class_count(curves_block):
    cfg = {**curves_block, "n_demos": 9, "block_size": 2, "change_point": None, "replacement_words": PAPER_WORDS}
    binary = labels.build_conditions(cfg, 2)
    assert [c.name for c in binary] == [
        "default", "random", "flipped", "words:A/B", "words:B/A", "words:green/blue", "words:blue/green",
        "words:sea/chair", "words:chair/sea", "default_to_flipped", "flipped_to_default", "alternating",
        "instructed_flipped",
    ]
    halfway = {c.name: c for c in binary}
    assert halfway["default_to_flipped"].change_point == 4 and halfway["alternating"].block_size == 2
    ternary = [c.name for c in labels.build_conditions({**cfg, "conditions": ["words"]}, 3)]
    assert ternary == ["words:A/B/C", "words:no/ok/yes", "words:blue/green/yellow"]
    assert labels.build_conditions({**cfg, "conditions": ["flip_halfway"], "change_point": 2}, 2)[0].change_point == 2
    with pytest.raises(labels.LabelError, match="unknown condition"):
        labels.build_conditions({**cfg, "conditions": ["upside_down"]}, 2)


def test_condition_words():
    verbal = ["negative", "positive"]
    assert labels.condition_words(Condition("default", "default"), verbal) == verbal
    assert labels.condition_words(Condition("words:B/A", "words", words=("B", "A")), verbal) == ["B", "A"]


def test_sample_context_with_replacement_is_seeded():
    train = pd.DataFrame({"uid": range(5), "label": ["a", "b"] * 2 + ["a"], "text": list("vwxyz")})
    first = labels.sample_context(train, 12, labels.demo_rng("toy", 12, 0, 0), replace=True)
    again = labels.sample_context(train, 12, labels.demo_rng("toy", 12, 0, 0), replace=True)
    assert len(first) == 12 and first["uid"].tolist() == again["uid"].tolist()
    assert labels.label_indices(first, ["a", "b"]).tolist() == [int(x == "b") for x in first["label"]]
    with pytest.raises(labels.LabelError):
        labels.sample_context(train, 6, np.random.default_rng(0), replace=False)


def test_novel_task_labels_inputs_by_source(curves_block):
    registry = {"sst2": {"fields": ["text"]}, "rte": {"fields": ["premise", "hypothesis"]}}
    novel = {**curves_block["novel"], "sources": ["sst2", "rte"], "words": ["foo", "bar"], "max_chars": 12}
    spec = labels.novel_spec(novel, registry)
    assert spec["classes"] == ["sst2", "rte"] and spec["verbalizer"] == {"sst2": "foo", "rte": "bar"}
    frames = {
        "sst2": pd.DataFrame({"uid": [1, 2, 3], "label": "positive", "text": ["A  Gem .", "Dull", "fine"]}),
        "rte": pd.DataFrame(
            {"uid": [7, 8], "label": "entailment", "premise": ["It Rains", "X"], "hypothesis": ["wet ground", "y"]}
        ),
    }
    pool = labels.novel_pool(frames, spec, seed=0)
    assert pool["label"].value_counts().to_dict() == {"sst2": 2, "rte": 2}
    assert pool[pool["label"] == "rte"]["text"].tolist() == ["it rains wet", "x y"]
    assert set(pool[pool["label"] == "sst2"]["text"]) <= {"a gem .", "dull", "fine"}
    with pytest.raises(labels.LabelError, match="not in the dataset registry"):
        labels.novel_spec({**novel, "sources": ["sst2", "agnews"]}, registry)
    with pytest.raises(labels.LabelError, match="one word per source"):
        labels.novel_spec({**novel, "words": ["foo"]}, registry)

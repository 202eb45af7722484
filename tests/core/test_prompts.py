"""Prompt sampling: determinism, class balance, no overlap with the test set, exact rendering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iclgd.core import prompts

SPEC = {
    "template": "Review: {text}\nSentiment:",
    "verbalizer": {"neg": "negative", "pos": "positive"},
    "classes": ["neg", "pos"],
}


def frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {"uid": range(start, start + n), "label": ["neg", "pos"] * (n // 2), "text": [f"t{i}" for i in range(start, start + n)]}
    )


TRAIN, TEST = frame(40), frame(10, start=1000)


def build(**kw):
    return prompts.build_prompt_sets("toy", SPEC, TRAIN, TEST, kw.pop("ks", [0, 1, 2, 4, 8]), kw.pop("seeds", [0, 1, 2]), **kw)


def test_same_inputs_same_prompt_sets_and_bytes(tmp_path):
    a, b = build(), build()
    assert a == b
    prompts.write_prompt_sets(a, tmp_path / "a.jsonl")
    prompts.write_prompt_sets(b, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert prompts.read_prompt_sets(tmp_path / "a.jsonl") == a


def test_grid_and_zero_shot_has_one_seed():
    sets = build()
    assert [(s["k"], s["seed"]) for s in sets] == [(0, 0)] + [(k, s) for k in (1, 2, 4, 8) for s in (0, 1, 2)]
    assert sets[0]["prefix"] == "" and sets[0]["demos"] == []


def test_seeds_differ_and_demos_never_come_from_the_test_set():
    sets = build()
    test_uids = set(TEST["uid"])
    for s in sets:
        assert not {d["uid"] for d in s["demos"]} & test_uids
        assert [q["uid"] for q in s["queries"]] == list(TEST["uid"])
    eights = [tuple(d["uid"] for d in s["demos"]) for s in sets if s["k"] == 8]
    assert len(set(eights)) == 3


def test_balanced_without_replacement():
    for s in build():
        labels = [d["label"] for d in s["demos"]]
        assert abs(labels.count("neg") - labels.count("pos")) <= 1
        assert len({d["uid"] for d in s["demos"]}) == len(labels)


def test_with_replacement_can_exceed_the_pool():
    small = frame(4)
    demos = prompts.sample_demos(small, 12, np.random.default_rng(0), balanced=False, replace=True)
    assert len(demos) == 12
    with pytest.raises(prompts.PromptError, match="without replacement"):
        prompts.sample_demos(small, 12, np.random.default_rng(0), replace=False)


def test_prefix_is_the_rendered_demos_in_recorded_order():
    s = build(ks=[2], seeds=[0])[0]
    by_uid = TRAIN.set_index("uid")
    expected = "".join(
        f"Review: {by_uid.loc[d['uid'], 'text']}\nSentiment: {SPEC['verbalizer'][d['label']]}\n\n" for d in s["demos"]
    )
    assert s["prefix"] == expected
    assert s["queries"][0]["query"] == "Review: t1000\nSentiment:"
    assert s["label_words"] == ["negative", "positive"]


def test_template_naming_a_missing_field_is_refused():
    with pytest.raises(prompts.PromptError, match="premise"):
        prompts.render_query("{premise} ?", {"text": "x"})


def test_permuted_orders_are_other_orders_of_the_same_demonstrations():
    sets = build(seeds=[0])
    perms = prompts.permuted_sets(sets, 2)
    assert [(p["k"], p["order"]) for p in perms] == [(k, o) for k in (2, 4, 8) for o in (1, 2)]
    by_k = {s["k"]: s for s in sets}
    for p in perms:
        base = by_k[p["k"]]
        assert sorted(d["uid"] for d in p["demos"]) == sorted(d["uid"] for d in base["demos"])
        assert [d["uid"] for d in p["demos"]] != [d["uid"] for d in base["demos"]]
        assert p["prefix"] == "".join(d["text"] + "\n\n" for d in p["demos"])
        assert p["queries"] == base["queries"] and base["order"] == 0
    two = [p for p in perms if p["k"] == 2]  # the only other order of two demonstrations is the swap
    assert all([d["uid"] for d in p["demos"]] == [d["uid"] for d in by_k[2]["demos"]][::-1] for p in two)
    assert prompts.permuted_sets(sets, 2) == perms  # seeded
    few = prompts.permuted_sets(sets, 2, n_queries=3)
    assert [p["queries"] for p in few] == [p["queries"][:3] for p in perms] and len(few[0]["queries"]) == 3
    assert [p["demos"] for p in few] == [p["demos"] for p in perms]


def test_one_demonstration_has_no_other_order():
    with pytest.raises(prompts.PromptError, match="k >= 2"):
        prompts.permuted(build(ks=[1], seeds=[0])[0], 1)


def test_demo_inputs_strip_the_label_word_render_demo_appended():
    s = build(ks=[4], seeds=[0])[0]
    by_uid = TRAIN.set_index("uid")
    assert prompts.demo_inputs(s) == [prompts.render_query(SPEC["template"], by_uid.loc[d["uid"]].to_dict())
                                      for d in s["demos"]]
    bad = {**s, "demos": [{**s["demos"][0], "text": s["demos"][0]["text"] + "."}]}
    with pytest.raises(prompts.PromptError, match="does not end with its label word ' (negative|positive)'"):
        prompts.demo_inputs(bad)
    with pytest.raises(KeyError):  # the error class is the caller's
        prompts.demo_inputs(bad, error=KeyError)

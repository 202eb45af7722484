"""The context-length check (iclgd.core.context): the estimate by hand, token counts as prompts render them, the
error naming the key, dataset and model, and what it cannot check left as a note. The start-up check that
feeds it the run's prompts and models' windows is tested in test_startup.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from scipy.stats import norm

from iclgd.core import context


class WordTokenizer:
    """Whitespace tokens; BOS (id 1) when special tokens are asked for: lengths countable by hand."""

    def __call__(self, text: str, add_special_tokens: bool = True):
        ids = [7] * len(text.split())
        return SimpleNamespace(input_ids=([1] if add_special_tokens else []) + ids)


def test_longest_prompt_estimate_by_hand():
    found = context.Lengths(demo_mean=10.0, demo_sd=2.0, query_max=7, special=1)
    assert found.typical(4) == 1 + 40 + 7
    assert found.longest(4, 1) == 48  # one prompt: z at 1 - 1/2 is 0
    assert found.longest(4, 10) == int(-(-(48 + norm.ppf(0.95) * 2.0 * 2.0) // 1))


def test_lengths_count_tokens_as_the_prompts_render_them():
    import pandas as pd

    spec = {"template": "Review: {text}\nSentiment:", "verbalizer": {"pos": "good"}, "fields": ["text"]}
    train = pd.DataFrame({"text": ["a b", "a b c d"], "label": ["pos", "pos"]})
    test = pd.DataFrame({"text": ["x", "x y z"], "label": ["pos", "pos"]})
    found = context.lengths(WordTokenizer(), spec, train, test)
    # "Review: a b Sentiment: good" = 5 words, the other 7; queries "Review: x y z Sentiment:" = 5
    assert (found.demo_mean, found.query_max, found.special) == (6.0, 5, 1)
    assert found.demo_sd == pytest.approx(2 ** 0.5)
    cut = context.lengths(WordTokenizer(), spec, train, test, max_chars=1)
    assert cut.demo_mean == 4.0  # every text cut to one character: one word


def test_check_names_the_key_dataset_and_model():
    demand = context.Demand("labels.n_demos", "agnews", 33, 500, ("big",))
    fits = {"big": (4096, "config.json")}
    small = {"big": (2048, "/m/config.json")}
    lengths = context.Lengths(60.0, 20.0, 90, 1)  # ~2071 typical: AG News-like
    assert context.check([demand], fits, lambda *_: lengths) == []
    with pytest.raises(context.ContextError, match=r"labels\.n_demos: 33 demonstrations of 'agnews' do not fit 'big'"
                       r"'s context of 2048 tokens \(/m/config\.json\): a typical prompt"):
        context.check([demand], small, lambda *_: lengths)


def test_a_mixed_task_has_the_mixture_s_lengths():
    both = context.mixture([context.Lengths(10.0, 0.0, 5, 1), context.Lengths(30.0, 0.0, 9, 1)])
    assert (both.demo_mean, both.demo_sd, both.query_max) == (20.0, 10.0, 9)  # half 10, half 30 tokens


def test_unknown_window_or_tokenizer_is_a_note_not_a_pass():
    demand = context.Demand("icl.n_demos", "sst2", 4, 5, ("a", "b"))
    notes = context.check([demand], {"a": None, "b": (64, "x")}, lambda *_: None)
    assert len(notes) == 2 and "'a'" in notes[0] and "window" in notes[0] and "tokenizer" in notes[1]

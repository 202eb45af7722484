"""Token counts of the prompts a run builds (iclgd.tools.token_lengths): measured with a tokenizer whose counts
are known by hand, and the arithmetic the cost table multiplies by."""

from __future__ import annotations

import pandas as pd

from iclgd.tools import token_lengths


def test_measure_with_a_word_tokenizer():
    class Words:
        """One id per whitespace-separated word; BOS added unless told not to."""

        def __call__(self, text, add_special_tokens=True):
            return type("Enc", (), {"input_ids": [0] * add_special_tokens + [1] * len(text.split())})()

    spec = {"template": "Review: {text}\nSentiment:", "verbalizer": {"pos": "good", "neg": "bad"}, "fields": ["text"]}
    train = pd.DataFrame({"text": ["a b", "a b c d"], "label": ["pos", "neg"], "uid": [1, 2]})
    test = pd.DataFrame({"text": ["a", "a b c"], "label": ["pos", "neg"], "uid": [3, 4]})
    found = token_lengths.measure(Words(), spec, train, test)
    # demos: Review: + words + Sentiment: + label -> 5 and 7; queries: 3 and 5; BOS 1
    assert found == token_lengths.TokenLengths(demo=6.0, query=4.0, special=1, n_test=2)


def test_prompt_tokens_by_hand():
    lengths = token_lengths.TokenLengths(demo=10.0, query=5.0, special=1, n_test=6)
    assert lengths.prefix(4) == 41  # BOS + 4 demonstrations
    assert lengths.set_tokens(4, 3) == 41 + 15  # the prefix once, then every query
    assert lengths.zero_shot(3) == 3 * (1 + 5)  # each query alone, with its own BOS
    assert (lengths.queries(None), lengths.queries(4), lengths.queries(100)) == (6, 4, 6)  # capped by the split

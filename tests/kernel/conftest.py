"""Fixtures of the kernel-regression tests: the `kernel` config block, a small prompt set."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from iclgd.core import prompts

REPO = Path(__file__).resolve().parents[2]

#: Three classes, so that label symbols and per-class label words are exercised beyond a binary task.
SPEC = {
    "template": "Review: {text}\nSentiment:",
    "verbalizer": {"neg": "negative", "pos": "positive", "mid": "neutral"},
    "classes": ["neg", "pos", "mid"],
}
#: Demonstration texts that stress the span bookkeeping: punctuation merges, spaces, non-ASCII, newlines.
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


@pytest.fixture
def kernel_cfg(default_config) -> dict:
    """The validated `kernel` block of the default config, a fresh copy per test."""
    return copy.deepcopy(default_config["kernel"])


@pytest.fixture
def toy_spec() -> dict:
    """The three-class review task the prompt sets below are built from."""
    return copy.deepcopy(SPEC)


@pytest.fixture(scope="session")
def make_prompt_set():
    """prompt_set(k, n_test, seed): k demonstrations of TEXTS (labels cycling through SPEC's classes)
    and up to three test queries, as `prompts.build_prompt_sets` builds them."""

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

    return prompt_set

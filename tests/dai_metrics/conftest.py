"""Fixtures of the Dai-metrics tests: toy prompt sets, the validated `dai` config block."""

from __future__ import annotations

from typing import Callable

import pandas as pd
import pytest

from iclgd.core import prompts

SPEC = {
    "template": "Review: {text}\nSentiment:",
    "verbalizer": {"negative": "negative", "positive": "positive"},
    "classes": ["negative", "positive"],
}
WORDS = ["dull", "great", "flat", "lovely", "tedious", "superb", "boring", "moving"]


def frame(uids, offset: int) -> pd.DataFrame:
    return pd.DataFrame({
        "uid": uids,
        "label": ["positive" if i % 2 else "negative" for i in range(len(uids))],
        "text": [f"a {WORDS[(i + offset) % len(WORDS)]} film" for i in range(len(uids))],
    })


@pytest.fixture(scope="session")
def dai_prompt_sets() -> Callable[..., list[dict]]:
    """Prompt sets of a toy sentiment task: 20 training rows to draw demonstrations from, n_test queries."""

    def build(ks=(1, 3), seeds=(0,), n_test: int = 4) -> list[dict]:
        return prompts.build_prompt_sets("toy", SPEC, frame(list(range(100, 120)), 0),
                                         frame(list(range(900, 900 + n_test)), 3), list(ks), list(seeds))

    return build


@pytest.fixture
def dai_block(default_config) -> dict:
    """The validated default `dai` block (a copy: tests override values)."""
    return dict(default_config["dai"])


@pytest.fixture
def boot(default_config) -> dict:
    """The validated default `metrics` block with fewer bootstrap resamples (fast tests)."""
    return {**default_config["metrics"], "n_boot": 200}

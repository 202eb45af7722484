"""Fixtures the fine-tuning and order tests share: a toy sentiment dataset, its k = 4 prompt set, one torch
thread (bitwise comparisons), and a private copy of the tiny model for tests that train it."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from iclgd.core import prompts

WORDS = ["dull", "great", "flat", "lovely", "tedious", "superb", "boring", "moving", "weak", "sharp"]


def _frame(uids: list[int], offset: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": uids,
            "label": ["positive" if i % 2 else "negative" for i in range(len(uids))],
            "text": [f"a {WORDS[(i + offset) % len(WORDS)]} film, take {i}" for i in range(len(uids))],
        }
    )


@pytest.fixture(scope="session")
def toy() -> SimpleNamespace:
    """template, spec (a datasets.yaml entry), train (the demonstration pool) and test splits."""
    template = "Review: {text}\nSentiment:"
    spec = {
        "template": template,
        "verbalizer": {"negative": "negative", "positive": "positive"},
        "classes": ["negative", "positive"],
    }
    return SimpleNamespace(template=template, spec=spec, train=_frame(list(range(100, 130)), 0),
                           test=_frame(list(range(900, 906)), 3))


@pytest.fixture(scope="session")
def prompt_set(toy) -> dict:
    (ps,) = prompts.build_prompt_sets("toy", toy.spec, toy.train, toy.test, [4], [0])
    return ps


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model(tiny):
    """A private copy: training must not leak into the session-wide tiny model other tests use."""
    return copy.deepcopy(tiny[0])


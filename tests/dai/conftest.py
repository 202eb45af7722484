"""Fixtures of the Dai-metrics tests: prompt sets of the toy task, the validated `dai` config block."""

from __future__ import annotations

from typing import Callable

import pytest

from iclgd.core import prompts


@pytest.fixture(scope="session")
def dai_prompt_sets(toy) -> Callable[..., list[dict]]:
    """Prompt sets of the toy sentiment task (tests/conftest.py): demonstrations drawn from its 30
    training rows, its first n_test (<= 6) test rows as queries."""

    def build(ks=(1, 3), seeds=(0,), n_test: int = 4) -> list[dict]:
        if n_test > len(toy.test):
            raise ValueError(f"the toy task has {len(toy.test)} test rows, not {n_test}")
        return prompts.build_prompt_sets("toy", toy.spec, toy.train, toy.test.iloc[:n_test], list(ks), list(seeds))

    return build


@pytest.fixture
def dai_block(default_config) -> dict:
    """The validated default `dai` block (a copy: tests override values)."""
    return dict(default_config["dai"])


@pytest.fixture
def boot(default_config) -> dict:
    """The validated default `metrics` block with fewer bootstrap resamples (fast tests)."""
    return {**default_config["metrics"], "n_boot": 200}

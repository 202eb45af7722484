"""Shared fixtures of the label-relationship tests: the validated `curves` config block."""

from __future__ import annotations

import pytest


@pytest.fixture
def curves_block(default_config) -> dict:
    """The validated default `curves` block (a copy: tests override values)."""
    return dict(default_config["labels"])

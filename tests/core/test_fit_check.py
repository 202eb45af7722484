"""The start-up memory check: LLaMa-7B's shape (a config.json, no weights) against one 80 GB GPU, in bf16."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from transformers import LlamaConfig

from iclgd.core import context, fit_check
from iclgd.core.config import ConfigError, resolve
from iclgd.tools.shape_run import LLAMA_7B

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def llama7b(tmp_path, monkeypatch, default_config):
    """A run of LLaMa-7B's shape (hf entry: config.json only) fine-tuned with SGD and Adam on v_mid and all."""
    monkeypatch.setattr(context, "CACHE", tmp_path / "cache")
    LlamaConfig(**LLAMA_7B).save_pretrained(tmp_path / "llama-7b")
    config = copy.deepcopy(default_config)
    config["models"]["big"] = {"source": "hf", "path": str(tmp_path / "llama-7b")}
    config["use_models"] = ["big"]
    config["finetune"] |= {"optimizers": ["sgd", "adam"], "subsets": ["v_mid", "all"], "lrs_by_model": {}}
    config["order"] |= {"models": ["big"], "subset": "all", "optimizers": ["gd"]}
    config["runtime"] = config["runtime"] | {"device": "cuda", "dtype": "auto", "device_memory_gb": 80}
    return config


def test_adam_on_all_of_7b_does_not_fit_80_gb(llama7b):
    with pytest.raises(ConfigError, match=r"config key finetune\.optimizers: adam on 'all' of 'big' in bfloat16 needs "
                                          r"~1\d\d GB on the device, more than its 80 GB .* add \{model: big, "
                                          r"optimizer: adam, subset: all\} to finetune\.skip"):
        fit_check.check(resolve(llama7b, REPO), llama7b, gpus=1)


def test_what_fits_passes_and_a_skip_leaves_the_run_out(llama7b):
    llama7b["finetune"]["skip"] = [{"model": "big", "optimizer": "adam", "subset": "all"}]
    run = resolve(llama7b, REPO)
    kinds = [setting[:5] for setting in fit_check.settings(run)]
    assert ("finetune", "big", "adam", "all", 256) not in kinds
    assert ("finetune", "big", "sgd", "all", llama7b["finetune"]["batch_tokens"]) in kinds
    assert fit_check.check(run, llama7b, gpus=1) == []
    llama7b["order"]["optimizers"] = ["adam"]  # the order experiment trains all of it too
    with pytest.raises(ConfigError, match=r"order\.optimizers: adam on 'all'.*add \{model: big, optimizer: adam\} "
                                          r"to order\.skip"):
        fit_check.check(resolve(llama7b, REPO), llama7b, gpus=1)


def test_float32_on_a_small_device_fails_and_unknown_models_are_noted(llama7b, default_config):
    llama7b["finetune"]["skip"] = [{"model": "big", "optimizer": "adam", "subset": "all"}]
    llama7b["runtime"] |= {"dtype": "float32"}  # SGD on all of 7B in float32: ~56 GB + activations
    llama7b["runtime"]["device_memory_gb"] = 40
    with pytest.raises(ConfigError, match="sgd on 'all' of 'big' in float32"):
        fit_check.check(resolve(llama7b, REPO), llama7b, gpus=1)
    config = copy.deepcopy(default_config)
    config["models"]["smollm2-135m"] = {"source": "hf", "path": "/nonexistent"}
    config["runtime"] = config["runtime"] | {"device_memory_gb": 24}
    notes = fit_check.check(resolve(config, REPO), config, gpus=0)
    assert any("'smollm2-135m' not checked" in n for n in notes)


def test_device_memory_from_the_config_or_the_machine():
    assert fit_check.device_gb({"device_memory_gb": 80}, gpus=1) == 80.0
    assert 1 < fit_check.device_gb({"device_memory_gb": None}, gpus=0) < 10_000  # this machine's RAM


def test_host_memory_requests_follow_the_parameter_count(llama7b):
    """Slurm's --mem for LLaMa-7B's jobs, by hand: (2 GB process + 13.48 GB bf16 weights [+ the same again for
    the snapshot of all trained parameters]) x 1.2, in MiB; float32 on the CPU doubles the weights."""
    weights = 6_738_415_616 * 2
    assert fit_check.host_mb("big", llama7b, 1, train=False) == -(-(2e9 + weights) * 1.2 // 2**20) == 17712
    assert fit_check.host_mb("big", llama7b, 1, train=True) == -(-(2e9 + 2 * weights) * 1.2 // 2**20) == 33135
    assert fit_check.host_mb("big", llama7b, 0, train=False, dtype="float32") > 2 * 17712 - 2000
    llama7b["models"]["unknown"] = {"source": "hf", "path": "/nonexistent"}
    assert fit_check.host_mb("unknown", llama7b, 1, train=True) == fit_check.FALLBACK_MB

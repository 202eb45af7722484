"""What the workflow checks before any job runs (iclgd.core.startup): the GPUs a model job holds, the prompts the
run builds (the shared prompt sets, then every study's own), a real HF directory whose window the default
prompts exceed, and skips leaving out exactly their pairs."""

from __future__ import annotations

import copy

import pytest
from transformers import LlamaConfig, LlamaForCausalLM

from config_support import run_config
from iclgd.core import context, startup
from iclgd.core.config import ConfigError, resolve

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("device,gpus", [("cpu", 0), ("cuda", 1), ("cuda:1", 1)])
def test_model_gpus_follow_an_explicit_device(device, gpus):
    assert startup.model_gpus({"device": device}) == gpus


def test_model_gpus_on_auto_need_a_driver_and_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(startup.shutil, "which", lambda name: None)
    assert startup.model_gpus({"device": "auto"}) == 0  # no NVIDIA driver
    monkeypatch.setattr(startup.shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None)
    assert startup.model_gpus({"device": "auto"}) == 1
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert startup.model_gpus({"device": "auto"}) == 0, hidden
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert startup.model_gpus({"device": "auto"}) == 1


def test_demands_are_the_shared_prompt_sets_then_every_studys_own(tmp_path):
    config = run_config(tmp_path, icl={"n_demos": [0, 2], "demo_seeds": [0, 1, 2]}, order={"n_demos": 4})
    run = resolve(config, REPO_ROOT)
    found = startup.demands(run, config)
    shared = found[: len(run.datasets)]
    # the longest shared k is order's 4 (icl asks for 2 at most): one demand per dataset, one prompt per seed
    assert [(d.key, d.dataset, d.k, d.n_prompts) for d in shared] == [
        ("order.n_demos", dataset, 4, 3) for dataset in run.datasets]
    for demand in shared:  # every model in use; the untrained control only where it runs
        controls = tuple(m for m in run.control.models if demand.dataset in run.control.datasets)
        assert demand.models == (*run.models, *controls)
    own = [d for spec in run.specs for d in spec.demands(run, config)]
    assert found[len(run.datasets):] == own
    assert {d.key for d in own} == {"labels.n_demos", "kernel.n_demos"}  # the studies that build their own
    config = run_config(tmp_path, icl={"n_demos": [0, 16]}, order={"n_demos": 4})
    assert startup.demands(resolve(config, REPO_ROOT), config)[0].key == "icl.n_demos"  # icl's 16 is the longest


@pytest.fixture()
def short_window_dir(tmp_path, tiny, monkeypatch):
    """A real HF directory (random Llama, SmolLM2's tokenizer) whose window is 64 tokens."""
    monkeypatch.setattr(context, "CACHE", tmp_path / "cache")
    _, tok = tiny
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, max_position_embeddings=64)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "short")
    tok.save_pretrained(tmp_path / "short")
    return tmp_path / "short"


def _with_model(config: dict, path, **blocks) -> dict:
    config = copy.deepcopy(config)
    config["models"]["short"] = {"source": "hf", "path": str(path)}
    config["use_models"] = ["short"]
    for key, value in blocks.items():
        config[key] |= value
    return config


def test_start_up_refuses_prompts_past_a_real_window(default_config, short_window_dir, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    config = _with_model(default_config, short_window_dir)
    with pytest.raises(ConfigError, match=r"config key (icl|order)\.n_demos: 8 demonstrations of 'sst2' do not fit "
                                          r"'short'.s context of 64 tokens"):
        startup.check(resolve(config, REPO_ROOT), config)
    # the same prompts fit a wide window, with nothing left unchecked
    (short_window_dir / "config.json").write_text(
        (short_window_dir / "config.json").read_text().replace('"max_position_embeddings": 64', '"max_position_embeddings": 8192'))
    assert startup.check(resolve(config, REPO_ROOT), config) == []


def test_labels_skip_leaves_out_exactly_its_pairs(default_config):
    config = copy.deepcopy(default_config)
    config["labels"]["skip"] = [{"model": "gemma3-270m", "dataset": "sst2"}]
    run = resolve(config, REPO_ROOT)
    assert ("gemma3-270m", "sst2") not in run.pairs["labels"]
    assert ("smollm2-135m", "sst2") in run.pairs["labels"] and ("gemma3-270m", "novel") in run.pairs["labels"]
    sst2 = [d for d in startup.demands(run, config) if d.key == "labels.n_demos" and d.dataset == "sst2"]
    assert sst2 and all("gemma3-270m" not in d.models for d in sst2)
    config["kernel"]["skip"] = [{"model": "gemma3-270m", "dataset": "agnews"}]
    run = resolve(config, REPO_ROOT)
    assert run.pairs["kernel"] == (("smollm2-135m", "sst2"), ("smollm2-135m", "agnews"), ("gemma3-270m", "sst2"))
    kernel = [d for d in startup.demands(run, config) if d.key == "kernel.n_demos" and d.dataset == "agnews"]
    assert kernel[0].models == ("smollm2-135m",)
    config["labels"]["skip"] = [{"model": "nope", "dataset": "sst2"}]
    with pytest.raises(ConfigError, match="labels.skip"):
        resolve(config, REPO_ROOT)

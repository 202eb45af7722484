"""Study finetune's hooks (iclgd.finetune.study), through `config.resolve`: its demonstration seeds among icl's,
its grid with each model's own learning rates and skips, the (model, dataset) pairs it fine-tunes, and its
model names checked against the registry."""

from __future__ import annotations

import copy

import pytest

from config_support import REPO, run_config
from iclgd.core.config import ConfigError, resolve
from iclgd.finetune import study as finetune_study


def test_demo_seeds_restrict_to_icls_and_empty_means_all(tmp_path):
    run = resolve(run_config(tmp_path, icl={"demo_seeds": [0, 1, 2]}, finetune={"demo_seeds": []},
                             dai={"demo_seeds": [2, 5]}), REPO)
    assert finetune_study.demo_seeds(run) == (0, 1, 2) and run.blocks["finetune"]["demo_seeds"] == []
    assert run.blocks["dai"]["demo_seeds"] == [2]
    run = resolve(run_config(tmp_path, icl={"demo_seeds": [0, 1]}, finetune={"demo_seeds": [7]},
                             dai={"demo_seeds": [7]}), REPO)
    assert finetune_study.demo_seeds(run) == (0, 1) and run.blocks["finetune"]["demo_seeds"] == []
    assert run.blocks["dai"]["demo_seeds"] == [0, 1]


def test_finetune_grid_takes_the_models_own_learning_rates(default_config, tmp_path):
    config = copy.deepcopy(default_config) | {"data": {**default_config["data"], "mirror_dir": str(tmp_path)}}
    run = resolve(config, REPO)
    assert finetune_study.grid(run, "gemma3-270m")["lrs"] == [1.0e-4, 5.0e-4]
    assert finetune_study.grid(run)["lrs"] == [1.0e-4, 5.0e-4, 1.0e-3, 5.0e-3]
    assert not {"models", "demo_seeds", "lrs_by_model"} & set(finetune_study.grid(run))


def test_a_skipped_setting_reaches_only_its_models_grid(default_config):
    config = copy.deepcopy(default_config)
    config["finetune"]["skip"] = [{"model": "smollm2-135m", "optimizer": "gd", "subset": "all"}]
    run = resolve(config, REPO)
    assert finetune_study.grid(run, "smollm2-135m")["skip"] == [["gd", "all"]]
    assert finetune_study.grid(run, "gemma3-270m")["skip"] == []


def test_pairs_are_the_finetuned_models_on_every_dataset_then_the_controls_on_theirs(tmp_path):
    run = resolve(run_config(tmp_path, datasets=["sst2", "rte"], finetune={"models": ["gemma3-270m"]},
                             control={"datasets": ["rte"]}), REPO)
    assert run.pairs["finetune"] == (("gemma3-270m", "sst2"), ("gemma3-270m", "rte"), ("smollm2-135m-untrained", "rte"))


def test_learning_rates_for_an_unregistered_model_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="config key finetune.lrs_by_model"):
        resolve(run_config(tmp_path, finetune={"lrs_by_model": {"smollm2": [1.0e-3]}}), REPO)

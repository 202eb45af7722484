"""Study kernel's hooks (iclgd.kernel.study), through `config.resolve`: where its kNN and symbol extras run, and
the cross-key checks of its block (enough symbols for every class, a kNN pool as large as a prompt's
demonstrations)."""

from __future__ import annotations

import pytest

from config_support import REPO, run_config
from iclgd.core.config import ConfigError, resolve


def test_kernel_extras_follow_the_kernel_datasets(tmp_path):
    run = resolve(run_config(tmp_path, datasets=["sst2", "agnews", "cb", "rte"], kernel={"datasets": ["rte"], "extras_datasets": ["sst2"]}), REPO)
    block = run.blocks["kernel"]
    assert block["knn"] is False and block["symbols"] == [] and block["extras_datasets"] == []
    run = resolve(run_config(tmp_path, datasets=["sst2", "agnews", "cb", "rte"], kernel={"datasets": ["sst2", "rte"], "extras_datasets": []}), REPO)
    assert run.blocks["kernel"]["extras_datasets"] == [] and run.blocks["kernel"]["knn"] is True


def test_too_few_symbols_for_the_classes_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="config key kernel.symbols"):
        resolve(run_config(tmp_path, kernel={"symbols": ["^"]}), REPO)


def test_a_knn_pool_smaller_than_a_prompt_names_the_key_unless_knn_is_off(tmp_path):
    with pytest.raises(ConfigError, match="config key kernel.knn_pool"):
        resolve(run_config(tmp_path, kernel={"n_demos": 16, "knn_pool": 8}), REPO)
    run = resolve(run_config(tmp_path, kernel={"n_demos": 16, "knn_pool": 8, "knn": False}), REPO)
    assert run.blocks["kernel"]["knn"] is False

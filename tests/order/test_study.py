"""Study order's hooks (iclgd.order.study), through `config.resolve`: orderings must be distinct permutations of
order.n_demos demonstrations, and order.skip leaves an optimizer out of one model's run only."""

from __future__ import annotations

import copy

import pytest

from config_support import REPO, run_config
from iclgd.core.config import ConfigError, resolve
from iclgd.order import study as order_study


def test_more_orderings_than_permutations_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="config key order.orderings"):  # only 2! = 2 orderings of 2 demonstrations
        resolve(run_config(tmp_path, order={"n_demos": 2, "orderings": 3}), REPO)


def test_a_skipped_optimizer_leaves_only_its_models_run(default_config):
    config = copy.deepcopy(default_config)
    config["order"]["skip"] = [{"model": "smollm2-135m", "optimizer": "adam"}]
    run = resolve(config, REPO)
    assert "adam" not in order_study.order_block(run, "smollm2-135m")["optimizers"]
    assert "adam" in order_study.order_block(run, "gemma3-270m")["optimizers"]

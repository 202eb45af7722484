"""Study dai's hooks (iclgd.dai.study), through `config.resolve`: the untrained controls only on the control
datasets, its n_demos among icl's with demonstrations (falling back to all of them), and a run without any."""

from __future__ import annotations

import pytest

from config_support import REPO, run_config
from iclgd.core.config import ConfigError, resolve


def test_control_models_run_dai_only_on_control_datasets(tmp_path):
    run = resolve(run_config(tmp_path, datasets=["sst2", "agnews", "cb", "rte"], dai={"datasets": ["sst2", "rte"]}, control={"datasets": ["rte", "cb"]}),
                  REPO)
    assert run.control.datasets == ("cb", "rte")
    assert ("smollm2-135m-untrained", "rte") in run.pairs["dai"]
    assert ("smollm2-135m-untrained", "sst2") not in run.pairs["dai"]
    assert ("smollm2-135m", "sst2") in run.pairs["dai"]


def test_dai_n_demos_fall_back_to_every_icl_n_demos_with_demonstrations(tmp_path):
    run = resolve(run_config(tmp_path, icl={"n_demos": [0, 3, 16]}), REPO)
    assert run.blocks["dai"]["n_demos"] == [3, 16]
    assert run.prompts["n_demos"] == [0, 3, 16, 8]
    assert any("dai.n_demos" in n for n in run.notes)


def test_icl_without_demonstrations_leaves_dai_nothing_and_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="config key icl.n_demos"):
        resolve(run_config(tmp_path, icl={"n_demos": [0]}), REPO)

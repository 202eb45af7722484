"""Study construction's hook (iclgd.construction.study), through `config.resolve`: the threshold the paper
reports must be one of those the study computes."""

from __future__ import annotations

import pytest

from config_support import REPO, run_config
from iclgd.core.config import ConfigError, resolve


def test_a_reported_threshold_it_does_not_compute_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="config key construction.macro_threshold"):
        resolve(run_config(tmp_path, construction={"macro_threshold": 0.5}), REPO)

"""compare.study: the study has no config block of its own, runs on finetune's pairs, and its claims are sized
by the demonstration sets of the shared prompt grid."""

from __future__ import annotations

import copy
from types import SimpleNamespace

from config_support import REPO
from iclgd.compare.study import STUDY
from iclgd.core.config import resolve


def test_compare_comes_after_finetune_without_a_block_of_its_own(default_config, tmp_path):
    config = copy.deepcopy(default_config) | {"data": {**default_config["data"], "mirror_dir": str(tmp_path)}}
    run = resolve(config, REPO)
    names = [spec.name for spec in run.specs]
    assert names.index("finetune") < names.index("compare") < names.index("order")
    assert not STUDY.block and "compare" not in run.blocks


def test_its_claims_are_sized_by_the_demonstration_sets():
    row = SimpleNamespace(family="shen_permuted", n=5)
    assert STUDY.knob(row, {"icl": {"demo_seeds": [0, 1, 2, 3]}}) == ("icl.demo_seeds (count)", 4, 1.0, 0.0)

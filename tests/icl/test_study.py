"""Study icl's declaration (iclgd.icl.study): the first study, no hooks, so it runs every model in use on every
dataset of the run, and its config block sets the shared prompt grid rather than a run of its own."""

from __future__ import annotations

import pytest

from config_support import REPO, run_config
from iclgd.core import studies
from iclgd.core.config import Study, resolve
from iclgd.icl import study as icl_study


def test_icl_comes_first_and_runs_every_model_in_use_on_every_dataset(tmp_path):
    assert studies.discover()[0] is icl_study.STUDY
    run = resolve(run_config(tmp_path, datasets=["sst2", "rte"], icl={"n_demos": [0, 2], "demo_seeds": [0, 1]}), REPO)
    assert run.studies["icl"] == Study(run.models, ("sst2", "rte"))
    assert run.pairs["icl"] == tuple((m, d) for m in run.models for d in ("sst2", "rte"))
    assert "icl" not in run.blocks  # no resolve hook and no models list: nothing of its own to resolve
    # its n_demos and seeds open the shared grid; other studies' extras only follow them
    assert run.prompts["n_demos"][:2] == [0, 2] and run.prompts["demo_seeds"][:2] == [0, 1]


def test_icl_declares_no_hook():
    spec = icl_study.STUDY
    assert (spec.name, spec.block, spec.resolve, spec.pairs, spec.knob) == ("icl", True, None, None, None)
    assert spec.renamed == {} and spec.scale(None) == ([], [])
    with pytest.raises(AttributeError):
        spec.name = "other"  # frozen: a declaration, not state

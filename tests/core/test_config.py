"""What a validated config means for the run (iclgd.core.config): the cross-checks a schema cannot make, a
renamed block refused naming its new name, and resolve()'s choice of what each study runs on (restriction,
fallback, the prompt grid). What each study's own hooks decide is tested beside it (tests/<study>/test_study.py);
reading the config files and their defaults in test_config_files.py."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from config_support import run_config
from iclgd.core.config import ConfigError, check_renamed, resolve
from iclgd.core.config_files import load_config

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------------------- resolve


def test_shipped_configs_resolve_without_dropping_anything(tmp_path):
    for name in [None, "smoke", "paper", "decisive"]:
        files = [REPO / "config" / f"{name}.yaml"] if name else []
        config = load_config(REPO, *files, {"data": {"mirror_dir": str(tmp_path)}})
        assert resolve(config, REPO).notes == (), name


def test_default_run_resolves_to_what_its_blocks_name(default_config, tmp_path):
    config = copy.deepcopy(default_config) | {"data": {**default_config["data"], "mirror_dir": str(tmp_path)}}
    run = resolve(config, REPO)
    assert run.studies["kernel"].datasets == ("sst2", "agnews") and run.studies["kernel"].models == ("smollm2-135m", "gemma3-270m")
    assert run.studies["order"].models == ("smollm2-135m",) and run.studies["order"].datasets == ("agnews",)
    assert run.studies["labels"].datasets == ("sst2", "novel")
    assert run.pairs["dai"] == (("smollm2-135m", "sst2"), ("gemma3-270m", "sst2"), ("smollm2-135m-untrained", "sst2"))
    assert run.prompts["n_demos"] == [0, 2, 4, 8] and run.prompts["demo_seeds"] == [0, 1, 2, 3, 4]  # + order.n_demos
    assert set(run.registry) == {"sst2", "agnews"}


def test_a_list_restricts_the_study_in_the_runs_order(tmp_path):
    run = resolve(run_config(tmp_path, datasets=["sst2", "agnews", "rte"], kernel={"datasets": ["rte", "mr", "sst2"]}),
                  REPO)
    assert run.studies["kernel"].datasets == ("sst2", "rte")
    assert run.blocks["kernel"]["datasets"] == ["sst2", "rte"]
    assert any("kernel.datasets" in n and "'mr'" in n and "left out" in n for n in run.notes)


def test_an_empty_list_means_everything_the_run_uses(tmp_path):
    run = resolve(run_config(tmp_path, datasets=["sst2", "agnews", "cb", "rte"], order={"models": [], "datasets": []}), REPO)
    assert run.studies["order"].models == ("smollm2-135m", "gemma3-270m")
    assert run.studies["order"].datasets == ("sst2", "agnews", "cb", "rte") and run.notes == ()


def test_a_list_naming_nothing_the_run_uses_falls_back_to_everything(tmp_path):
    run = resolve(run_config(tmp_path, datasets=["trec"], use_models=["gemma3-270m"]), REPO)
    for study in (run.studies["kernel"], run.studies["order"], run.studies["dai"], run.control):
        assert set(study.datasets) == {"trec"}
    assert run.studies["order"].models == ("gemma3-270m",)
    assert run.studies["labels"].datasets == ("trec", "novel")  # the novel task stays; its sources are read
    assert {"sst2", "agnews", "trec"} == set(run.registry)
    notes = "\n".join(run.notes)
    for key in ("kernel.datasets", "order.datasets", "order.models", "dai.datasets", "control.datasets",
                "labels.datasets"):
        assert f"config key {key}:" in notes and "using all of them" in notes, key
    # the control's original is not used: left out, and so are its Dai runs
    assert run.control.models == () and "control.models" in notes
    assert run.pairs["dai"] == (("gemma3-270m", "trec"),)


@pytest.mark.parametrize(
    "blocks,key",
    [
        ({"kernel": {"datasets": ["imdb"]}}, "kernel.datasets"),
        ({"control": {"datasets": ["imdb"]}}, "control.datasets"),
        ({"finetune": {"models": ["gpt-5"]}}, "finetune.models"),
        ({"dai": {"models": ["gpt-5"]}}, "dai.models"),
        ({"control": {"models": ["gemma3-270m"]}}, "control.models"),
    ],
)
def test_cross_check_errors_name_the_config_key(tmp_path, blocks, key):
    with pytest.raises(ConfigError, match=f"config key {key}"):
        resolve(run_config(tmp_path, **blocks), REPO)


def test_a_config_still_holding_a_renamed_block_fails_naming_the_new_one():
    """The labels study declares renamed={"curves": "labels"}: a config still holding `curves:` is refused with
    an error that names `labels` (before the schema would only call `curves` unexpected)."""
    with pytest.raises(ConfigError, match=r"config key curves is now labels"):
        check_renamed({"curves": {}})
    check_renamed({"labels": {}, "icl": {}})  # the new name passes
    check_renamed({})


def test_missing_mirror_or_registry_names_the_key(default_config, tmp_path):
    config = copy.deepcopy(default_config)
    config["data"]["mirror_dir"] = str(tmp_path / "nope")
    with pytest.raises(ConfigError, match="data.mirror_dir"):
        resolve(config, REPO)
    config["data"]["registry"] = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="data.registry"):
        resolve(config, REPO)


def test_prompt_sets_cover_every_n_demos_and_seed_a_study_reads(tmp_path):
    run = resolve(run_config(tmp_path, icl={"n_demos": [0, 2], "demo_seeds": [0, 1]}, order={"demo_seed": 3}), REPO)
    assert run.prompts["n_demos"] == [0, 2, 8]  # order.n_demos 8 added after icl's
    assert run.prompts["demo_seeds"] == [0, 1, 3]  # order.demo_seed added after icl's
    assert run.blocks["dai"]["n_demos"] == [2]  # dai.n_demos [1, 2, 4, 8] within icl.n_demos


def test_importing_the_config_module_loads_no_heavy_library():
    """The workflow resolves the config at parse time: no torch, transformers or pandas."""
    code = "import sys, iclgd.core.config; print(sorted({'torch', 'transformers', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The one source of config truth: defaults only from config/schema.yaml, unknown keys rejected by the
schema, and resolve()'s choice of what each study runs on (restriction, fallback, the prompt grid)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError

from iclgd.core.config import ConfigError, resolve
from iclgd.core.config_files import load_config, typed
from iclgd.finetune import study as finetune_study

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
#: Keys config/config.yaml chooses for the default run (no schema default: they live there once).
TOP_LEVEL = {"data.mirror_dir", "data.registry", "datasets", "use_models", "models", "runtime"}


def schema_keys(node: dict, prefix: str = ""):
    """(dotted key, subschema) of every property, depth first, $refs resolved."""
    for key, sub in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        if "$ref" in sub:
            sub = {**SCHEMA["$defs"][sub["$ref"].split("/")[-1]], **sub}
        yield name, sub
        if sub.get("type") == "object" and "properties" in sub and name not in TOP_LEVEL and "$ref" not in sub:
            yield from schema_keys(sub, f"{name}.")  # a $ref'd entry (a claim reference) has its default whole


def flat(config: dict, prefix: str = "") -> dict[str, object]:
    """Dotted key -> leaf value (dicts descended)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_config(tmp_path: Path, **blocks) -> dict:
    """The default config with `blocks` merged in (as a config file would be), its mirror a temp dir."""
    return load_config(REPO, {"data": {"mirror_dir": str(tmp_path)}}, blocks)


# ----------------------------------------------------------------------------------------- defaults


def test_every_key_of_every_block_has_a_default_and_a_description():
    missing_default, missing_description = [], []
    for key, sub in schema_keys(SCHEMA):
        top = key.split(".")[0]
        if not sub.get("description"):
            missing_description.append(key)
        if key not in TOP_LEVEL | {"data"} and top not in TOP_LEVEL and "default" not in sub:
            missing_default.append(key)
    assert not missing_default, f"keys without a schema default: {missing_default}"
    assert not missing_description, f"keys without a description: {missing_description}"


def test_config_yaml_sets_no_key_that_the_schema_defaults():
    """Defaults live once: config.yaml holds only the top-level choices."""
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    defaulted = {key for key, sub in schema_keys(SCHEMA) if "default" in sub}
    assert not set(flat(raw)) & defaulted
    assert set(raw) == {"data", "datasets", "use_models", "models", "runtime"}


def test_blocks_absent_from_the_config_file_get_the_schema_defaults(default_config):
    blocks = {"icl", "labels", "kernel", "finetune", "control", "order", "dai", "claims", "construction", "metrics"}
    assert blocks <= set(default_config)
    for key, sub in schema_keys(SCHEMA):
        if "default" in sub and sub["default"] != {}:
            value = default_config
            for part in key.split("."):
                value = value[part]
            assert value == sub["default"] or key.startswith("claims.references."), key
    # nested objects are filled too (their own default is {})
    assert default_config["order"]["lrs"] == {"gd": 1.0, "sgd": 0.125, "adam": 1.0e-3}
    assert default_config["icl"]["permuted"] == {"orders": 1, "n_queries": 16}
    assert default_config["construction"]["lsa"]["n_demos"] == 20
    assert default_config["labels"]["novel"]["sources"] == ["sst2", "agnews"]
    assert default_config["claims"]["references"]["han_kernel"]["seed_baseline"] == [0.5, 0.695]
    assert default_config["data"]["n_test"] == 48


def test_a_partial_block_keeps_the_defaults_of_its_other_keys(tmp_path):
    config = run_config(tmp_path, order={"lrs": {"gd": 0.5}, "epochs": 7}, construction={"lsa": {"steps": 3}})
    assert config["order"]["lrs"] == {"gd": 0.5, "sgd": 0.125, "adam": 1.0e-3}
    assert config["order"]["epochs"] == 7 and config["order"]["subset"] == "v_deep"
    assert config["construction"]["lsa"]["steps"] == 3 and config["construction"]["lsa"]["d"] == 10


def test_smoke_config_overrides_and_keeps_the_rest(smoke_config, default_config):
    assert smoke_config["icl"]["n_demos"] == [0, 4] and smoke_config["order"]["n_demos"] == 4
    assert smoke_config["finetune"]["lrs_by_model"]["smollm2-135m-untrained"] == [5.0e-3]
    assert smoke_config["kernel"]["symbols"] == default_config["kernel"]["symbols"]


@pytest.mark.parametrize(
    "override,named",
    [
        ({"icl": {"shots": 3}}, "'shots' was unexpected"),
        ({"icl": {"k": [0, 2]}}, "'k' was unexpected"),  # old names fail loudly
        ({"order": {"prompt_seed": 1}}, "'prompt_seed' was unexpected"),
        ({"kernel": {"n_test": 5}}, "'n_test' was unexpected"),
        ({"construction": {"lsa": {"n_ctx": 5}}}, "'n_ctx' was unexpected"),
        ({"studies": {}}, "'studies' was unexpected"),
    ],
)
def test_unknown_keys_are_rejected_by_the_schema_naming_the_key(tmp_path, override, named):
    with pytest.raises(WorkflowError) as err:
        run_config(tmp_path, **override)
    assert named in str(err.value) + str(err.value.__cause__ or "") + repr(err.value.args)


def test_command_line_strings_get_their_schema_types():
    config = {"icl": {"n_demos": ["0", "2"], "permuted": {"n_queries": "null"}}, "datasets": ["trec"],
              "order": {"lrs": {"gd": "1e-4"}}, "kernel": {"symbols": ["^", "1"]}}
    typed(config, REPO / "config" / "schema.yaml")
    assert config == {"icl": {"n_demos": [0, 2], "permuted": {"n_queries": None}}, "datasets": ["trec"],
                      "order": {"lrs": {"gd": 1e-4}}, "kernel": {"symbols": ["^", "1"]}}


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


def test_the_novel_task_alone_runs_alone(tmp_path):
    run = resolve(run_config(tmp_path, labels={"datasets": ["novel"]}), REPO)
    assert run.studies["labels"].datasets == ("novel",)


def test_control_models_run_dai_only_on_control_datasets(tmp_path):
    run = resolve(run_config(tmp_path, datasets=["sst2", "agnews", "cb", "rte"], dai={"datasets": ["sst2", "rte"]}, control={"datasets": ["rte", "cb"]}),
                  REPO)
    assert run.control.datasets == ("cb", "rte")
    assert ("smollm2-135m-untrained", "rte") in run.pairs["dai"]
    assert ("smollm2-135m-untrained", "sst2") not in run.pairs["dai"]
    assert ("smollm2-135m", "sst2") in run.pairs["dai"]


@pytest.mark.parametrize(
    "blocks,key",
    [
        ({"kernel": {"datasets": ["imdb"]}}, "kernel.datasets"),
        ({"control": {"datasets": ["imdb"]}}, "control.datasets"),
        ({"labels": {"novel": {"sources": ["sst2", "imdb"]}}}, "labels.novel.sources"),
        ({"finetune": {"models": ["gpt-5"]}}, "finetune.models"),
        ({"dai": {"models": ["gpt-5"]}}, "dai.models"),
        ({"control": {"models": ["gemma3-270m"]}}, "control.models"),
        ({"finetune": {"lrs_by_model": {"smollm2": [1.0e-3]}}}, "finetune.lrs_by_model"),
        ({"construction": {"macro_threshold": 0.5}}, "construction.macro_threshold"),
        ({"order": {"n_demos": 2, "orderings": 3}}, "order.orderings"),
        ({"labels": {"novel": {"words": ["a", "b", "c"]}}}, "labels.novel.words"),
        ({"kernel": {"symbols": ["^"]}}, "kernel.symbols"),
        ({"icl": {"n_demos": [0]}}, "icl.n_demos"),
    ],
)
def test_cross_check_errors_name_the_config_key(tmp_path, blocks, key):
    with pytest.raises(ConfigError, match=f"config key {key}"):
        resolve(run_config(tmp_path, **blocks), REPO)


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


def test_dai_n_demos_fall_back_to_every_icl_n_demos_with_demonstrations(tmp_path):
    run = resolve(run_config(tmp_path, icl={"n_demos": [0, 3, 16]}), REPO)
    assert run.blocks["dai"]["n_demos"] == [3, 16]
    assert run.prompts["n_demos"] == [0, 3, 16, 8]
    assert any("dai.n_demos" in n for n in run.notes)


def test_demo_seeds_restrict_to_icls_and_empty_means_all(tmp_path):
    run = resolve(run_config(tmp_path, icl={"demo_seeds": [0, 1, 2]}, finetune={"demo_seeds": []},
                             dai={"demo_seeds": [2, 5]}), REPO)
    assert finetune_study.demo_seeds(run) == (0, 1, 2) and run.blocks["finetune"]["demo_seeds"] == []
    assert run.blocks["dai"]["demo_seeds"] == [2]
    run = resolve(run_config(tmp_path, icl={"demo_seeds": [0, 1]}, finetune={"demo_seeds": [7]},
                             dai={"demo_seeds": [7]}), REPO)
    assert finetune_study.demo_seeds(run) == (0, 1) and run.blocks["finetune"]["demo_seeds"] == []
    assert run.blocks["dai"]["demo_seeds"] == [0, 1]


def test_kernel_extras_follow_the_kernel_datasets(tmp_path):
    run = resolve(run_config(tmp_path, datasets=["sst2", "agnews", "cb", "rte"], kernel={"datasets": ["rte"], "extras_datasets": ["sst2"]}), REPO)
    block = run.blocks["kernel"]
    assert block["knn"] is False and block["symbols"] == [] and block["extras_datasets"] == []
    run = resolve(run_config(tmp_path, datasets=["sst2", "agnews", "cb", "rte"], kernel={"datasets": ["sst2", "rte"], "extras_datasets": []}), REPO)
    assert run.blocks["kernel"]["extras_datasets"] == [] and run.blocks["kernel"]["knn"] is True


def test_finetune_grid_takes_the_models_own_learning_rates(default_config, tmp_path):
    config = copy.deepcopy(default_config) | {"data": {**default_config["data"], "mirror_dir": str(tmp_path)}}
    run = resolve(config, REPO)
    assert finetune_study.grid(run, "gemma3-270m")["lrs"] == [1.0e-4, 5.0e-4]
    assert finetune_study.grid(run)["lrs"] == [1.0e-4, 5.0e-4, 1.0e-3, 5.0e-3]
    assert not {"models", "demo_seeds", "lrs_by_model"} & set(finetune_study.grid(run))


def test_importing_the_config_module_loads_no_heavy_library():
    """The workflow resolves the config at parse time: no torch, transformers or pandas."""
    code = "import sys, iclgd.core.config; print(sorted({'torch', 'transformers', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

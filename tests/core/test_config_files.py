"""Config files as the Snakefile reads them (iclgd.core.config_files): defaults only from config/schema.yaml,
config/config.yaml holding the top-level choices alone, overrides merged key by key, unknown keys rejected by
the schema, --config strings typed, relative paths found."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError

from config_support import run_config
from iclgd.core.config_files import load_config, repo_path, typed

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


def test_load_config_merges_a_file_then_a_dict_key_by_key_and_types_the_strings(tmp_path):
    override = tmp_path / "mine.yaml"
    override.write_text("order:\n  epochs: 7\n  lrs: {sgd: 0.5}\n")
    (tmp_path / "empty.yaml").write_text("")  # an empty config file changes nothing
    config = load_config(REPO, override, tmp_path / "empty.yaml", {"order": {"eval_every": "3"}})
    assert config["order"]["epochs"] == 7 and config["order"]["eval_every"] == 3  # "3" from --config: typed
    assert config["order"]["lrs"] == {"gd": 1.0, "sgd": 0.5, "adam": 1.0e-3}  # nested keys merged, not replaced
    assert config["order"]["subset"] == load_config(REPO)["order"]["subset"]  # the rest: schema defaults


def test_repo_path_prefers_the_working_directory_then_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.yaml").write_text("")
    assert repo_path("here.yaml", "/repo") == Path("here.yaml")  # found from the working directory
    assert repo_path("config/datasets.yaml", "/repo") == Path("/repo/config/datasets.yaml")  # not here: the repo's
    assert repo_path(str(tmp_path / "x"), "/repo") == tmp_path / "x"  # absolute: as given


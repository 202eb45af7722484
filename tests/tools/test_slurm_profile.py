"""The Slurm profile (config/profiles/slurm): generated from measured benchmarks and site settings.

Fast checks, no cluster: the rule kinds the generator reads, the requests it derives (hand-computed),
the GPU request of the model rules (and the sbatch flags the installed Slurm plugin makes of it), no
`mem_mb` where the rule sizes its own, the site settings, and that the shipped profile is what the shipped
site.yaml + measured.tsv give.
The profile on a real cluster: tests/workflow/test_slurm.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from iclgd.tools import slurm_profile as sp

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "config" / "profiles" / "slurm"
SITE = {"partition": "cpu", "account": "", "gpu_partition": "gpu", "gpus": 1, "gpu_model": "", "gres": "",
        "jobs": 50, "runtime_scale": 1.0}
#: The rules that put a model on runtime.device (prepare_model: an untrained copy is drawn there).
MODEL_RULES = {"icl", "finetune", "order", "dai", "kernel", "labels",
               "prepare_model"}


@pytest.fixture(scope="module")
def kinds() -> dict[str, sp.RuleKind]:
    return sp.rule_kinds()


def test_every_rule_is_local_or_measured(kinds):
    """A cluster rule needs a benchmark (its requests are measured); everything else runs locally."""
    assert len(kinds) > 30
    assert not [name for name, k in kinds.items() if not k.local and k.benchmark is None]
    # TeX Live lives on the submitting host; cheap rules cost more as jobs than they take
    assert kinds["paper"].local and kinds["check_paper"].local and kinds["icl_metrics"].local


def test_model_rules_are_the_device_rules(kinds):
    device = {name for name, k in kinds.items() if k.device}
    assert device == MODEL_RULES
    assert not any(kinds[name].local for name in device)


def test_requests_hand_computed():
    measured = pd.DataFrame({"rule": ["a", "b"], "jobs": [1, 2], "max_s": [100.0, 1.0], "max_rss_mb": [3742.6, 10.0]})
    # a: 3742.6 x 1.5 = 5613.9 -> 6000 MB; 100 s x 3 = 5 min -> 10 (minimum). b: minimums.
    assert sp.requests(measured) == {"a": {"mem_mb": 6000, "runtime": 10}, "b": {"mem_mb": 1000, "runtime": 10}}
    # 700 s x 3 x 2 = 70 min
    assert sp.requests(measured.assign(max_s=[700.0, 1.0]), runtime_scale=2)["a"]["runtime"] == 70


def test_benchmark_files_map_to_their_rules(tmp_path, kinds):
    for rel, rss in [("icl/m/sst2.tsv", "812.5"), ("icl/m/rte.tsv", "900"), ("lsa_study.tsv", "-")]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"s\th:m:s\tmax_rss\n12.5\t0:00:12\t{rss}\n")
    bench = sp.read_benchmarks(tmp_path, kinds)
    assert sorted(bench["rule"]) == ["icl", "icl", "lsa_study"]
    summary = sp.summarise(bench).set_index("rule")
    assert summary.loc["icl", "jobs"] == 2 and summary.loc["icl", "max_rss_mb"] == 900
    assert summary.loc["lsa_study", "max_rss_mb"] == 0  # "-": the job ended before the first sample


def test_unknown_benchmark_file_is_named(tmp_path, kinds):
    (tmp_path / "nope").mkdir()
    (tmp_path / "nope" / "x.tsv").write_text("s\tmax_rss\n1\t1\n")
    with pytest.raises(sp.ProfileError, match="nope/x.tsv"):
        sp.read_benchmarks(tmp_path, kinds)


@pytest.fixture(scope="module")
def measured() -> pd.DataFrame:
    return pd.read_csv(PROFILE / "measured.tsv", sep="\t", comment="#")


def test_gpus_only_on_model_rules(kinds, measured):
    """The model rules get the GPU partition, --gpus and tasks_per_gpu 0; weight_sparsity reads a model too,
    but on the CPU in float32: no GPU for it."""
    res = sp.set_resources(SITE | {"gpu_model": "a100"}, measured, kinds)
    assert set(res) == {name for name, k in kinds.items() if not k.local}
    for name, r in res.items():
        gpu = {key: r[key] for key in ("slurm_partition", "gpu", "gpu_model", "gres", "tasks_per_gpu") if key in r}
        expected = {"slurm_partition": "gpu", "gpu": 1, "gpu_model": "a100", "tasks_per_gpu": 0}
        assert gpu == (expected if name in MODEL_RULES else {}), name
    assert "weight_sparsity" in set(res) - MODEL_RULES
    assert 'load_model(snakemake.input.model, "cpu"' in (
        REPO / "workflow" / "scripts" / "construction" / "weight_sparsity.py").read_text()
    # a CPU-only cluster: gpu 0 overrides the rules' own gpu (1 when the submitting host has CUDA)
    cpu_only = sp.set_resources(SITE | {"gpus": 0}, measured, kinds)
    for name, r in cpu_only.items():
        assert {k: r[k] for k in ("gpu", "gres", "tasks_per_gpu", "slurm_partition") if k in r} == (
            {"gpu": 0} if name in MODEL_RULES else {}), name


@pytest.mark.parametrize("gres,model", [("gpu:1", ""), ("gpu:a100:1", "a100"), ("gpu:h100.80gb:2", "h100.80gb")])
def test_gres_replaces_gpus_on_model_rules(kinds, measured, gres, model):
    gpus = int(gres.rsplit(":", 1)[1])
    res = sp.set_resources(SITE | {"gres": gres, "gpus": gpus, "gpu_model": model}, measured, kinds)
    for name in MODEL_RULES:
        assert {k: v for k, v in res[name].items() if k not in ("runtime", "mem_mb")} == {
            "slurm_partition": "gpu", "gres": gres, "gpu": 0, "tasks_per_gpu": 0}
    assert not any("gres" in r for name, r in res.items() if name not in MODEL_RULES)


def test_no_mem_mb_where_the_rule_sizes_its_own(kinds, measured):
    """Model rules carry their own per-model mem_mb: set-resources would override it, so the profile has none;
    every other cluster rule keeps its measured one."""
    res = sp.set_resources(SITE, measured, kinds)
    assert {name for name, k in kinds.items() if k.own_mem} >= MODEL_RULES - {"prepare_model"}
    for name, r in res.items():
        assert ("mem_mb" in r) == (not kinds[name].own_mem), name
    measured_mem = {rule: req["mem_mb"] for rule, req in sp.requests(measured).items()}
    assert {name: r["mem_mb"] for name, r in res.items() if "mem_mb" in r} == {
        name: measured_mem[name] for name in res if not kinds[name].own_mem}
    assert res["claims"]["mem_mb"] == 1000 and res["lsa_study"]["mem_mb"] == 1000  # 442.9 / 449.1 MB x 1.5 -> min
    assert all("runtime" in r for r in res.values())


def test_own_mem_read_from_the_rule(tmp_path):
    (tmp_path / "x.smk").write_text(
        '"""Two rules."""\n\n\nrule a:\n    input:\n        model="resources/models/{model}",\n    benchmark:\n        "benchmarks/a.tsv"\n'
        '    threads: 1\n    resources:\n        runtime=5,\n        mem_mb=lambda wc: model_mem_mb(wc.model),\n'
        '    params:\n        runtime=config["runtime"],\n\n\n'
        'rule b:\n    benchmark:\n        "benchmarks/b.tsv"\n    resources:\n        runtime=5,\n'
        '    params:\n        mem_mb=1,\n')
    kinds = sp.rule_kinds(tmp_path)
    assert kinds["a"].own_mem and kinds["a"].device
    assert not kinds["b"].own_mem and not kinds["b"].device


class _Resources(dict):
    __getattr__ = dict.get


def _sbatch(profile: dict, rule: str, rule_resources: dict, extra_defaults: dict | None = None) -> str:
    """The sbatch flags snakemake-executor-plugin-slurm makes of a job of `rule` under `profile` (resources:
    default-resources < the rule's own < set-resources, as Snakemake merges them)."""
    submit_string = pytest.importorskip("snakemake_executor_plugin_slurm.submit_string")
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    resources = _Resources(profile["default-resources"] | (extra_defaults or {}) | rule_resources
                           | profile["set-resources"][rule])
    job = SimpleNamespace(resources=resources, threads=1, name=rule)
    params = {"run_uuid": "u", "slurm_logfile": "l", "comment_str": f"rule_{rule}", "account": "",
              "partition": f"-p {resources['slurm_partition']}", "workdir": "w"}
    return submit_string.get_submit_command(job, params) + set_gres_string(job)


@pytest.mark.parametrize("site,flag", [({}, " --gpus=1"), ({"gpu_model": "a100"}, " --gpus=a100:1"),
                                       ({"gres": "gpu:a100:2", "gpus": 2, "gpu_model": "a100"},
                                        " --gres=gpu:a100:2")])
def test_plugin_sbatch_flags(tmp_path, site, flag):
    """Through the installed plugin: a model job asks for its GPU once, in the GPU partition, with the rule's
    own mem_mb and never --ntasks-per-gpu (not even when a site sets `tasks`), whatever the rule's own `gpu`
    (MODEL_GPUS: 1 when the submitting host has CUDA); a CPU job gets neither."""
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(SITE | site))
    profile = yaml.safe_load(sp.write_profile(tmp_path / "site.yaml", PROFILE / "measured.tsv",
                                              tmp_path / "config.yaml"))
    for extra, own_gpu in [({}, 0), ({"tasks": 1}, 0), ({}, 1)]:
        model = _sbatch(profile, "finetune", {"mem_mb": 8000, "gpu": own_gpu}, extra).split()
        assert "-p" in model and model[model.index("-p") + 1] == "gpu"
        assert [f for f in model if f.startswith(("--gpus", "--gres"))] == [flag.strip()]
        assert not [f for f in model if f.startswith("--ntasks")]
        assert model[model.index("--mem") + 1] == "8000" and model[model.index("-t") + 1] == "35"
        assert "--cpus-per-task=1" in model
    cpu = _sbatch(profile, "claims", {}).split()
    assert cpu[cpu.index("-p") + 1] == "cpu" and cpu[cpu.index("--mem") + 1] == "1000" and cpu[cpu.index("-t") + 1] == "10"
    assert "--ntasks=1" in cpu and not [f for f in cpu if f.startswith(("--gpus", "--gres", "--ntasks-per"))]


def test_missing_measurement_is_an_error(kinds):
    measured = pd.DataFrame({"rule": ["icl"], "jobs": [1], "max_s": [1.0], "max_rss_mb": [1.0]})
    with pytest.raises(sp.ProfileError, match="finetune"):
        sp.set_resources(SITE, measured, kinds)


@pytest.mark.parametrize("change,expected", [
    ({"gpus": -1}, "key gpus"), ({"gpus": True}, "key gpus"), ({"partition": ""}, "key partition"),
    ({"qos": "x"}, "unknown keys \\['qos'\\]"), ({"jobs": "many"}, "key jobs"),
    ({"gpu_partition": ""}, "key gpu_partition"), ({"gpu_partition": "gpu a100"}, "key gpu_partition"),
    ({"gpu_model": "a100:1"}, "key gpu_model"), ({"gpu_model": "'a100'"}, "key gpu_model"),
    ({"gres": 1}, "key gres must be a string"), ({"gres": "gpu"}, "key gres must be a GPU GRES"),
    ({"gres": "a100:1"}, "key gres must be a GPU GRES"), ({"gres": "gpu:0"}, "key gres must be a GPU GRES"),
    ({"gres": "--gres=gpu:1"}, "key gres must be a GPU GRES"), ({"gres": "gpu:1", "gpus": 0}, "key gres .* gpus is 0"),
    ({"gres": "gpu:2"}, "key gres asks for 2 GPUs per job, key gpus for 1"),
    ({"gres": "gpu:a100:1"}, "key gres names GPU type 'a100', key gpu_model '\\(any\\)'"),
    ({"gres": "gpu:1", "gpu_model": "a100"}, "key gres names GPU type '\\(any\\)', key gpu_model 'a100'"),
    ({"runtime_scale": float("nan")}, "key runtime_scale"),
])
def test_bad_site_settings_name_the_key(tmp_path, change, expected):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE | change))
    with pytest.raises(sp.ProfileError, match=expected):
        sp.read_site(path)


@pytest.mark.parametrize("change", [{}, {"gres": "gpu:1"}, {"gres": "gpu:a100:1", "gpu_model": "a100"},
                                    {"gpus": 0, "gpu_partition": ""}, {"gpu_model": "h100.80gb"}])
def test_good_site_settings_pass(tmp_path, change):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE | change))
    assert sp.read_site(path) == SITE | change


def test_shipped_profile_is_up_to_date(tmp_path):
    """config.yaml is exactly what `make slurm-profile` writes from site.yaml and measured.tsv."""
    text = sp.write_profile(PROFILE / "site.yaml", PROFILE / "measured.tsv", tmp_path / "config.yaml")
    assert (PROFILE / "config.yaml").read_text() == text
    profile = yaml.safe_load(text)
    assert profile["executor"] == "slurm" and profile["set-resources"]["claims"]["mem_mb"] >= 1000
    assert profile["set-resources"]["finetune"]["tasks_per_gpu"] == 0 and "mem_mb" not in profile["set-resources"]["finetune"]
    header = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    assert "tasks_per_gpu: 0 = no --ntasks-per-gpu" in header and "mem_mb: none here for the rules" in header

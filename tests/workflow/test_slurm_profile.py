"""The Slurm profile (config/profiles/slurm): generated from measured benchmarks and site settings.

Fast checks, no cluster: the rule kinds the generator reads, the requests it derives (hand-computed),
the site settings, and that the shipped profile is what the shipped site.yaml + measured.tsv give.
The profile on a real cluster: tests/workflow/test_slurm.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from iclgd.core import slurm_profile as sp

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "config" / "profiles" / "slurm"
SITE = {"partition": "cpu", "account": "", "gpu_partition": "gpu", "gpus": 1, "gpu_model": "", "jobs": 50,
        "runtime_scale": 1.0}


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
    assert device == {"icl", "finetune", "order_sensitivity", "dai_capture", "kernel_regression", "label_curves"}
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


def test_gpus_only_on_model_rules(kinds):
    measured = pd.read_csv(PROFILE / "measured.tsv", sep="\t", comment="#")
    res = sp.set_resources(SITE | {"gpu_model": "a100"}, measured, kinds)
    assert res["finetune"]["gpu"] == 1 and res["finetune"]["slurm_partition"] == "gpu"
    assert res["finetune"]["gpu_model"] == "a100"
    assert "gpu" not in res["prepare_model"] and "slurm_partition" not in res["claims"]
    cpu_only = sp.set_resources(SITE | {"gpus": 0}, measured, kinds)
    assert not any("gpu" in r or "slurm_partition" in r for r in cpu_only.values())
    assert set(res) == {name for name, k in kinds.items() if not k.local}


def test_missing_measurement_is_an_error(kinds):
    measured = pd.DataFrame({"rule": ["icl"], "jobs": [1], "max_s": [1.0], "max_rss_mb": [1.0]})
    with pytest.raises(sp.ProfileError, match="finetune"):
        sp.set_resources(SITE, measured, kinds)


@pytest.mark.parametrize("change,expected", [({"gpus": -1}, "gpus"), ({"partition": ""}, "partition"),
                                              ({"qos": "x"}, "unknown keys \\['qos'\\]"), ({"jobs": "many"}, "jobs")])
def test_bad_site_settings_name_the_key(tmp_path, change, expected):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE | change))
    with pytest.raises(sp.ProfileError, match=expected):
        sp.read_site(path)


def test_shipped_profile_is_up_to_date(tmp_path):
    """config.yaml is exactly what `make slurm-profile` writes from site.yaml and measured.tsv."""
    text = sp.write_profile(PROFILE / "site.yaml", PROFILE / "measured.tsv", tmp_path / "config.yaml")
    assert (PROFILE / "config.yaml").read_text() == text
    profile = yaml.safe_load(text)
    assert profile["executor"] == "slurm" and profile["set-resources"]["finetune"]["mem_mb"] >= 1000

"""The pipeline on a real single-node Slurm cluster (README "Running on a cluster"; `make test-cluster`).

`.ci/slurm-cluster` brings up munged, MariaDB, slurmdbd, slurmctld and slurmd on this machine (and stops
them by PID afterwards, also when a test fails). The end-to-end test config then runs through
`--executor slurm` with the project's profile, generated for this cluster: partitions `cpu` and `gpu`, one
GPU per model job (`make slurm-profile` with site.yaml's partition cpu, gpu_partition gpu, gpus 1, gres ""; the
node's two GPUs are fake, a gpu GRES on /dev/null and /dev/zero, and torch finds no CUDA device, so the jobs
run their models on the CPU as locally), and is checked:

- the sbatch calls (the plugin's debug log) and Slurm's accounting (`sacct -X -o Comment,Partition,AllocTRES`):
  exactly the jobs of the rules that run a model (those that pass `runtime` to their script) asked for and got
  `gres/gpu=1` in partition `gpu`, with no `--ntasks-per-gpu`; every other job none, in partition `cpu`;

- one of its jobs, made to fail (label curves), ends the run with a non-zero exit that names the job's
  log and Slurm log, and leaves none of that job's outputs behind;
- a rerun after the failure is fixed finishes the rest;
- the outputs are the local end-to-end run's (fixture `e2e`), byte for byte once the run's own
  measurements (wall times, peak memory) and provenance are set aside (pipeline_support.comparable).

With ICLGD_CLUSTER_PAPER=1 (make test-cluster-paper), config/paper.yaml's whole DAG with tiny models
(config/paper_tiny.yaml) then runs on it to the paper.

Needs root (daemons, apt) and takes a few minutes; runs only with ICLGD_CLUSTER=1 (make test-cluster).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from pipeline_support import REPO, SNAKEMAKE, copy_workflow, run_outputs, write_test_config

from iclgd.tools import slurm_profile

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.environ.get("ICLGD_CLUSTER") != "1", reason="cluster test: make test-cluster"),
]
CLUSTER = REPO / ".ci" / "slurm-cluster"
#: A hung snakemake ignores SIGTERM; SIGINT ends it (../shared/reference/slurm.md).
LIMIT_S = 900
PAPER_LIMIT_S = 3600
FAILING = "workflow/scripts/labels/run_labels.py"
INJECTED = '\nraise SystemExit("injected failure: the cluster test makes this job fail")\n'


@pytest.fixture(scope="module")
def cluster():
    """A running single-node cluster; every daemon stopped by PID afterwards, whatever happened."""
    state = Path(tempfile.mkdtemp(prefix="iclgd-slurm-"))
    try:
        up = subprocess.run([str(CLUSTER), "up", str(state)], capture_output=True, text=True, timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        yield state
    finally:
        down = subprocess.run([str(CLUSTER), "down", str(state)], capture_output=True, text=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)
        assert down.returncode == 0, down.stderr


#: This cluster's site (.ci/slurm-cluster): partitions cpu and gpu, GPUs asked for with --gpus.
SITE = {"partition": "cpu", "gpu_partition": "gpu", "gpus": 1, "gpu_model": "", "gres": ""}


def cluster_profile(tmp_path: Path) -> Path:
    """The project's profile for this cluster: partitions cpu and gpu, 1 GPU per model job; all else as shipped."""
    site = yaml.safe_load((slurm_profile.PROFILE_DIR / "site.yaml").read_text())
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site | SITE))
    slurm_profile.write_profile(tmp_path / "site.yaml", slurm_profile.PROFILE_DIR / "measured.tsv",
                                tmp_path / "config.yaml")
    return tmp_path


def on_slurm(workdir: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(workdir / "repo" / "Snakefile"), "--directory", str(workdir), "--profile",
           str(profile), "--jobs", "2", "--slurm-init-seconds-before-status-checks", "5",
           "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(["timeout", "-s", "INT", "-k", "30", str(LIMIT_S), *cmd], capture_output=True, text=True,
                          cwd=workdir)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The e2e config on the cluster: first with one rule's script made to fail, then fixed and rerun."""
    work = tmp_path_factory.mktemp("slurm_e2e")
    copy_workflow(work / "repo")
    write_test_config(work)
    profile = cluster_profile(tmp_path_factory.mktemp("profile"))
    script = work / "repo" / FAILING
    original = script.read_text()
    script.write_text(original + INJECTED)
    failed = on_slurm(work, profile, "--verbose")  # --verbose: the plugin logs each sbatch call
    left = sorted(p.relative_to(work).as_posix() for p in (work / "results" / "labels").rglob("*") if p.is_file())
    logs = {p.relative_to(work).as_posix(): p.read_text() for p in (work / "logs").rglob("labels/**/*.log")}
    script.write_text(original)
    rerun = on_slurm(work, profile, "--verbose")
    # every job of both runs, as Slurm's accounting has it (the cluster is this module's alone)
    sacct = subprocess.run(["sacct", "-X", "-P", "-n", "-a", "--starttime", "now-1days",
                            "--format=JobID,JobName,Comment,Partition,AllocTRES,State"],
                           capture_output=True, text=True, timeout=60)
    return {"dir": work, "failed": failed, "left": left, "logs": logs, "rerun": rerun, "sacct": sacct}


@pytest.mark.slow
def test_failing_job_exits_nonzero_naming_its_logs(slurm_run):
    failed = slurm_run["failed"]
    assert failed.returncode not in (0, 124), failed.stderr[-3000:]  # 124: the time limit, not the failure
    text = failed.stdout + failed.stderr
    assert "Error in rule labels" in text
    # the rule's log and the job's Slurm log (kept: the job failed); the rule's log holds the cause
    named = re.search(r"log: (logs/\S*labels/tiny-llama/\w+\.log), (\S+/\.snakemake/slurm_logs/"
                      r"rule_labels/tiny-llama_\w+/\d+\.log)", text)
    assert named, text[-3000:]
    assert "injected failure" in slurm_run["logs"][named.group(1)]  # as it was before the rerun
    assert "Error in rule labels" in Path(named.group(2)).read_text()
    assert slurm_run["left"] == [], "a failed job left outputs behind"


@pytest.mark.slow
def test_rerun_finishes_the_rest(slurm_run):
    rerun = slurm_run["rerun"]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    work = slurm_run["dir"]
    assert (work / "paper" / "main.pdf").read_bytes().startswith(b"%PDF")
    (work / "profile_again").mkdir()
    dry = on_slurm(work, cluster_profile(work / "profile_again"), "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr


def sbatch_calls(result: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """Per rule, the sbatch calls the plugin made (its debug log: `sbatch call: sbatch ... --comment rule_<rule>...`)."""
    calls: dict[str, list[str]] = {}
    for line in (result.stdout + result.stderr).splitlines():
        call = re.search(r"sbatch call: (sbatch .*?) (?:--wrap=|/dev/stdin)", line)
        if call:
            rule = re.search(r"--comment '?rule_(\w+?)(?:_wildcards_\S*?)?'? ", call.group(1)).group(1)
            calls.setdefault(rule, []).append(call.group(1))
    return calls


@pytest.mark.slow
def test_gpu_on_exactly_the_model_jobs(slurm_run):
    """The model rules' jobs asked for one GPU in partition gpu (--gpus=1, no --ntasks-per-gpu) and Slurm gave
    them one (sacct AllocTRES gres/gpu=1); every other job asked for none, got none, ran in partition cpu."""
    kinds = slurm_profile.rule_kinds()
    model_rules = {name for name, k in kinds.items() if k.device}
    calls = sbatch_calls(slurm_run["failed"])
    for rule, more in sbatch_calls(slurm_run["rerun"]).items():
        calls.setdefault(rule, []).extend(more)
    assert model_rules <= set(calls), f"model rules without a job: {model_rules - set(calls)}"
    assert set(calls) - model_rules, "no CPU job was submitted"
    for rule, rule_calls in calls.items():
        for call in rule_calls:
            assert "--ntasks-per-gpu" not in call, call
            if rule in model_rules:
                assert " -p gpu " in call and " --gpus=1" in call and "--gres" not in call, call
                assert " --mem " in call and " -t " in call, call  # the rule's mem_mb, the profile's runtime
            else:
                assert " -p cpu " in call and "--gpus" not in call and "--gres" not in call, call
                assert " --ntasks=1" in call, call

    sacct = slurm_run["sacct"]
    assert sacct.returncode == 0, sacct.stderr
    jobs = [line.split("|") for line in sacct.stdout.splitlines() if line.strip()]
    assert len(jobs) == sum(map(len, calls.values())), sacct.stdout
    got_gpu = set()
    for job_id, _name, comment, partition, tres, _state in jobs:
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        assert rule in kinds and not kinds[rule].local, comment
        gpus = re.findall(r"gres/gpu=(\d+)", tres)
        if rule in model_rules:
            assert gpus == ["1"] and partition == "gpu", (job_id, comment, partition, tres)
            got_gpu.add(rule)
        else:
            assert gpus == [] and partition == "cpu", (job_id, comment, partition, tres)
    assert got_gpu == model_rules


@pytest.mark.slow
def test_cluster_outputs_equal_the_local_run(slurm_run, e2e):
    local, cluster = run_outputs(e2e), run_outputs(slurm_run["dir"])
    assert len(local) > 100
    assert sorted(local) == sorted(cluster)
    assert [rel for rel in local if local[rel] != cluster[rel]] == []


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ICLGD_CLUSTER_PAPER") != "1",
                    reason="the published DAG on the cluster takes most of an hour: make test-cluster-paper")
@pytest.mark.skipif(not (REPO.parent / "shared" / "data").is_dir(), reason="needs the data mirror ../shared/data")
def test_published_dag_runs_on_the_cluster(cluster, tmp_path):
    """config/paper.yaml's every job (tiny models, small n: config/paper_tiny.yaml) through the profile,
    to the paper and its build check."""
    profile = cluster_profile(tmp_path)
    work = tmp_path / "paper_dag"
    args = ["-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile",
            str(REPO / "config" / "paper.yaml"), str(REPO / "config" / "paper_tiny.yaml")]
    result = subprocess.run(["timeout", "-s", "INT", "-k", "30", str(PAPER_LIMIT_S), *SNAKEMAKE, *args, "--profile",
                             str(profile), "--jobs", "2", "--slurm-init-seconds-before-status-checks", "5",
                             ], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    check = json.loads((work / "results" / "paper" / "build_check.json").read_text())
    assert check["problems"] == []
    dry = subprocess.run([*SNAKEMAKE, *args, "--cores", "1", "-n"], capture_output=True, text=True, cwd=tmp_path)
    assert "Nothing to be done" in dry.stdout + dry.stderr

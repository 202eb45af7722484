"""The pipeline on a real single-node Slurm cluster (README "Running on a cluster"; `make test-cluster`).

`.ci/slurm-cluster` brings up munged, MariaDB, slurmdbd, slurmctld and slurmd on this machine (and stops
them by PID afterwards, also when a test fails). The end-to-end test config then runs through
`--executor slurm` with the project's profile, generated for this cluster's partition and no GPU
(`make slurm-profile` with a site.yaml naming partition `debug`, gpus 0), and is checked:

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

from iclgd.core import slurm_profile

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(os.environ.get("ICLGD_CLUSTER") != "1", reason="cluster test: make test-cluster"),
]
CLUSTER = REPO / ".ci" / "slurm-cluster"
#: A hung snakemake ignores SIGTERM; SIGINT ends it (../shared/reference/slurm.md).
LIMIT_S = 900
PAPER_LIMIT_S = 3600
FAILING = "workflow/scripts/label_relationships/run_label_curves.py"
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


def cluster_profile(tmp_path: Path) -> Path:
    """The project's profile for this cluster: partition `debug`, no GPU; everything else as shipped."""
    site = yaml.safe_load((slurm_profile.PROFILE_DIR / "site.yaml").read_text())
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site | {"partition": "debug", "gpus": 0}))
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
    failed = on_slurm(work, profile)
    left = sorted(p.relative_to(work).as_posix() for p in (work / "results" / "label_curves").rglob("*") if p.is_file())
    logs = {p.relative_to(work).as_posix(): p.read_text() for p in (work / "logs").rglob("*label_curves/**/*.log")}
    script.write_text(original)
    rerun = on_slurm(work, profile)
    return {"dir": work, "failed": failed, "left": left, "logs": logs, "rerun": rerun}


@pytest.mark.slow
def test_failing_job_exits_nonzero_naming_its_logs(slurm_run):
    failed = slurm_run["failed"]
    assert failed.returncode not in (0, 124), failed.stderr[-3000:]  # 124: the time limit, not the failure
    text = failed.stdout + failed.stderr
    assert "Error in rule label_curves" in text
    # the rule's log and the job's Slurm log (kept: the job failed); the rule's log holds the cause
    named = re.search(r"log: (logs/\S*label_curves/tiny-llama/\w+\.log), (\S+/\.snakemake/slurm_logs/"
                      r"rule_label_curves/tiny-llama_\w+/\d+\.log)", text)
    assert named, text[-3000:]
    assert "injected failure" in slurm_run["logs"][named.group(1)]  # as it was before the rerun
    assert "Error in rule label_curves" in Path(named.group(2)).read_text()
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

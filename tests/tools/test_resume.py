"""Resuming after a hard kill: the stale-lock check, and a run killed while a job writes its output (a
stale lock and a partial output marked incomplete) that the same command finishes with byte-identical
tables."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from iclgd.tools import resume
from pipeline_support import REPO, SNAKEMAKE, write_test_config


@pytest.mark.parametrize("cmdline, cwd, workdir", [
    (["python", ".venv/bin/snakemake", "--cores", "2"], "/w", "/w"),
    (["python", "-m", "snakemake", "--directory", "runs/smoke"], "/w", "/w/runs/smoke"),
    (["snakemake", "-d", "/elsewhere"], "/w", "/elsewhere"),
    (["snakemake", "--directory=runs/x"], "/w", "/w/runs/x"),
])
def test_process_workdir(cmdline, cwd, workdir):
    assert resume.process_workdir(cmdline, cwd) == Path(workdir)


@pytest.mark.parametrize("cmdline, expected", [
    (["/w/.venv/bin/python", "/w/.venv/bin/snakemake", "--profile", "p"], True),
    (["python3", "-m", "snakemake", "-n"], True),
    (["/w/.venv/bin/python", "/w/.snakemake/scripts/tmpab12.run_icl.py"], True),
    # make's shell names snakemake in its command string: it is not a Snakemake process
    (["/bin/bash", "-c", ".venv/bin/python -m iclgd.tools.resume --directory . && .venv/bin/snakemake"], False),
    (["python", "-m", "pytest", "tests"], False),
])
def test_is_snakemake(cmdline, expected):
    assert resume.is_snakemake(cmdline) is expected


def lock(workdir: Path) -> Path:
    (workdir / resume.LOCKS).mkdir(parents=True)
    path = workdir / resume.LOCKS / "0.input.lock"
    path.write_text("")
    return path


def test_a_stale_lock_is_removed_and_said(tmp_path):
    stale = lock(tmp_path)
    line = resume.resume(tmp_path)
    assert not stale.exists() and line.startswith(f"resume: {tmp_path} held a stale lock")
    assert resume.resume(tmp_path) == ""                              # nothing to do: nothing said


def test_a_live_snakemake_keeps_its_lock(tmp_path):
    held = lock(tmp_path)
    fake = tmp_path / "bin" / "snakemake"                             # a process whose script is `snakemake`
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(fake)], cwd=tmp_path)
    try:
        deadline = time.time() + 20
        while proc.pid not in resume.live_snakemake(tmp_path) and time.time() < deadline:
            time.sleep(0.1)
        line = resume.resume(tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert held.exists() and f"live Snakemake (pid {proc.pid})" in line


TARGETS = ["results/metrics/icl_accuracy.csv", "results/icl/tiny-llama/toy_sent.parquet",
           "results/icl/tiny-llama/toy_nli.parquet"]


def make_like(workdir: Path, config: Path) -> subprocess.Popen:
    """What `make` runs: the stale-lock check, then Snakemake with the default profile."""
    check = f"{sys.executable} -m iclgd.tools.resume --directory {workdir}"
    run = " ".join([*SNAKEMAKE, *TARGETS, "--profile", str(REPO / "config/profiles/default"), "-s",
                    str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(config)])
    return subprocess.Popen(["bash", "-c", f"{check} && {run}"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def incomplete(workdir: Path) -> list[Path]:
    """Outputs Snakemake marks as being written (.snakemake/incomplete/)."""
    marks = workdir / ".snakemake" / "incomplete"
    return [p for p in marks.iterdir() if p.name != "migration_underway"] if marks.is_dir() else []


def model_half_written(workdir: Path) -> bool:
    """prepare_model is writing the tiny model's directory: a partial output, marked incomplete."""
    return bool(incomplete(workdir)) and (workdir / "resources" / "models" / "tiny-llama").is_dir()


@pytest.mark.slow
def test_a_run_killed_mid_job_resumes_by_the_same_command(e2e, tmp_path):
    config = write_test_config(tmp_path)
    proc = make_like(tmp_path, config)
    deadline = time.time() + 300
    while not model_half_written(tmp_path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None and model_half_written(tmp_path), "no job was caught writing its output"
    os.killpg(proc.pid, signal.SIGKILL)                                # power loss: no cleanup at all
    proc.wait()
    assert list((tmp_path / resume.LOCKS).glob("*.lock")), "a hard kill leaves Snakemake's lock"
    assert incomplete(tmp_path), "... and a partial output marked incomplete"
    again = make_like(tmp_path, config)
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out[-3000:]
    assert "held a stale lock" in out.splitlines()[0]
    for rel in TARGETS:
        assert (tmp_path / rel).read_bytes() == (e2e / rel).read_bytes(), rel

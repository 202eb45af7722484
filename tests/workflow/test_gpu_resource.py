"""One model job per GPU: on CUDA every rule that runs a model (and the untrained copy's build) requests
`gpu: 1`, nothing else does, and the local profile caps `gpu` at 1; on the CPU they request none."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MODEL_RULES = {"icl", "finetune", "order", "dai", "kernel", "labels"}
RUNTIME = "runtime={{device: {}, dtype: float32, threads: 1, batch_size: 8, batch_tokens: 1024}}"


def gpu_requests(tmp_path: Path, device: str) -> dict[str, set[int]]:
    """rule -> the gpu values its jobs request in a dry run of the smoke config on `device`."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--profile",
           str(REPO / "config" / "profiles" / "default"), "--configfile", str(REPO / "config" / "smoke.yaml"),
           "--config", RUNTIME.format(device), "--directory", str(tmp_path / device), "--cores", "4", "-n"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found: dict[str, set[int]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule:
            gpu = re.search(r"resources:.*\bgpu=(\d+)", block)
            found.setdefault(rule.group(1), set()).add(int(gpu.group(1)) if gpu else 0)
    return found


def test_on_cuda_exactly_the_model_jobs_hold_a_gpu(tmp_path):
    found = gpu_requests(tmp_path, "cuda")
    holding = {rule for rule, values in found.items() if 1 in values}
    assert MODEL_RULES <= set(found)
    assert holding == MODEL_RULES | {"prepare_model"}  # prepare_model: only the untrained copies
    assert found["prepare_model"] == {0, 1}


def test_on_the_cpu_no_job_holds_a_gpu(tmp_path):
    assert all(values == {0} for values in gpu_requests(tmp_path, "cpu").values())


def test_the_local_profile_caps_gpu_jobs_at_one():
    profile = yaml.safe_load((REPO / "config" / "profiles" / "default" / "config.yaml").read_text())
    assert "gpu=1" in profile["resources"]

"""Parsing the workflow stays cheap: it must not import torch or transformers (a no-op `make reproduce`
pays the parse on every call; torch + transformers alone cost ~10 s there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def poisoned_path(tmp_path: Path) -> str:
    """A PYTHONPATH whose `torch` and `transformers` raise on import."""
    for name in ("torch", "transformers"):
        package = tmp_path / "poison" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"raise ImportError('workflow parsing imported {name}')\n")
    return os.pathsep.join([str(tmp_path / "poison"), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])


def dry_run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--configfile",
           str(REPO / "config" / "smoke.yaml"), "--directory", str(tmp_path / "run"), "--cores", "1", "-n", "--quiet"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_parsing_the_workflow_imports_no_torch(tmp_path):
    """Once the start-up context check has cached its token counts (the first parse on a machine loads
    the tokenizers), a parse imports neither."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    warm = dry_run(tmp_path, env)
    assert warm.returncode == 0, warm.stderr[-3000:]
    result = dry_run(tmp_path, {**env, "PYTHONPATH": poisoned_path(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_poison_works(tmp_path):
    """The guard can fail: importing torch under the poisoned path raises."""
    env = {**os.environ, "PYTHONPATH": poisoned_path(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "import iclgd.core.models"], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "workflow parsing imported torch" in result.stderr

"""Expected results: the code hash, a refresh from a finished run, and the shipped sets' integrity."""

import json
from pathlib import Path

import pytest

from iclgd.core.provenance import sha256_file
from iclgd.tools import expected

REPO = Path(__file__).resolve().parents[2]


def fake_repo(root: Path) -> Path:
    for rel, text in {"Snakefile": "include: 'x'", "workflow/rules/a.smk": "rule a:", "src/iclgd/core/x.py": "X = 1",
                      "src/iclgd/tools/t.py": "T = 1", "pyproject.toml": "[project]"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_code_hash_follows_the_science_code_not_the_tooling(tmp_path):
    repo = fake_repo(tmp_path)
    before = expected.code_sha256(repo)
    (repo / "src/iclgd/tools/t.py").write_text("T = 2")
    (repo / "src/iclgd/core/__pycache__").mkdir()
    (repo / "src/iclgd/core/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    assert expected.code_sha256(repo) == before
    (repo / "workflow/rules/a.smk").write_text("rule b:")
    assert expected.code_sha256(repo) != before


def finished_run(run: Path) -> Path:
    files = {
        "results/stats/claims.csv": ("family,model,dataset,effect,effect_lo,effect_hi,test,unit,verdict\n"
                                     "x,m,sst2,0.5,0.1,0.9,t,contexts,reproduced\n"),
        "results/metrics/icl_accuracy.csv": "model,acc,eval_seconds\nm,0.7,3.1\n",
        "paper/generated/macros.json": json.dumps({"AccX": "70.0"}),
        "results/icl/m/sst2.parquet": "not a small output",
        "results/paper/provenance.json": json.dumps({
            "commit": "abc123", "config_sha256": "f" * 64, "configfiles": ["smoke.yaml", "config.yaml"],
            "environment": {"cpu": "Some CPU", "cpu cores": "2", "memory": "23.5 GiB", "gpu": "none",
                            "package torch": "2.13.0+cpu", "python": "3.11.7"},
            "benchmarks": [{"rule": "icl", "job": "m/sst2", "seconds": 90.0, "max_rss_mb": 900.0}]}),
    }
    for rel, text in files.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(text)
    return run


def test_refresh_copies_the_small_outputs_with_their_manifest(tmp_path):
    run, dest = finished_run(tmp_path / "run"), tmp_path / "expected" / "smoke"
    record = expected.refresh("smoke", run, dest, REPO)
    small = ["paper/generated/macros.json", "results/metrics/icl_accuracy.csv", "results/stats/claims.csv"]
    assert sorted(record["files"]) == small
    shipped = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert shipped == sorted(small + ["CLAIMS.md", "MANIFEST.json"])
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert manifest["commit"] == "abc123" and manifest["config_sha256"] == "f" * 64
    assert manifest["machine"] == {"cpu": "Some CPU", "cores": "2", "memory": "23.5 GiB", "gpu": "none",
                                   "torch": "2.13.0+cpu", "python": "3.11.7", "threads": 1}
    assert manifest["code_sha256"] == expected.code_sha256(REPO) and manifest["refresh"] == "make expected RUN=smoke"
    assert all(sha256_file(dest / rel) == sha for rel, sha in manifest["files"].items())
    assert "| x | m / sst2 | t, contexts | 0.5 [0.1, 0.9] | reproduced |" in (dest / "CLAIMS.md").read_text()


def test_refresh_refuses_an_unfinished_run(tmp_path):
    run = finished_run(tmp_path / "run")
    (run / "paper/generated/macros.json").unlink()
    with pytest.raises(SystemExit, match="not a finished run .* run `make smoke` first"):
        expected.refresh("smoke", run, tmp_path / "dest", REPO)


def test_run_dir_follows_the_makefile():
    assert expected.run_dir("default") == expected.REPO
    assert expected.run_dir("smoke") == expected.REPO / "runs" / "smoke"


@pytest.mark.parametrize("manifest", sorted((REPO / "expected").glob("*/MANIFEST.json")), ids=lambda p: p.parent.name)
def test_shipped_expected_results_are_whole(manifest):
    """Each shipped set holds the files its manifest lists, byte for byte, and says where it came from."""
    record = json.loads(manifest.read_text())
    assert record["name"] == manifest.parent.name and record["files"]
    assert "results/stats/claims.csv" in record["files"] and "paper/generated/macros.json" in record["files"]
    for rel, sha in record["files"].items():
        assert sha256_file(manifest.parent / rel) == sha, rel
    assert {"cpu", "cores", "torch", "threads"} <= set(record["machine"]) and len(record["code_sha256"]) == 64

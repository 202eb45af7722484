"""Incremental rebuilds: an edit reruns exactly the stages downstream of it (dry-run job lists).

Runs on the end-to-end fixture's private workflow copy; every edit is undone (content and mtime)
before the next check, so the other end-to-end tests still see an up-to-date run.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from pipeline_support import snakemake

#: Jobs that load a model or run inference / training: no analysis or paper edit may rerun them.
HEAVY = {"prepare_data", "prepare_model", "build_prompts", "icl", "finetune", "labels", "lsa_study",
         "weight_sparsity", "kernel", "dai", "order"}
REPO = Path(__file__).resolve().parents[2]


def benchmarked_rules() -> set[str]:
    """Rules with a `benchmark:` directive (the repository's convention for every heavy rule)."""
    names = set()
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule \w+:)", path.read_text())[1:]:
            if "\n    benchmark:" in block:
                names.add(re.match(r"rule (\w+):", block).group(1))
    return names


def test_heavy_covers_every_benchmarked_compute_rule():
    """HEAVY cannot silently miss a new model-loading rule: every benchmarked rule but the two cheap
    end-of-DAG ones (claims, paper) is in it."""
    assert benchmarked_rules() - {"claims", "paper"} <= HEAVY


def planned_jobs(e2e: Path) -> set[str]:
    """The rules a dry run would execute now (from Snakemake's job-stats table)."""
    result = snakemake(e2e, "--configfile", str(e2e / "config.yaml"), "-n", snakefile=e2e / "repo" / "Snakefile")
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return set()
    stats = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", stats, flags=re.M)} - {"job"}


def edited(e2e: Path, rel: str, tmp_path: Path):
    """Context manager: append a comment to `repo/<rel>`, restore it (bytes and mtime) afterwards."""
    path = e2e / "repo" / rel
    backup = tmp_path / path.name
    shutil.copy2(path, backup)

    class _Edit:
        def __enter__(self):
            comment = "%" if path.suffix == ".tex" else "#"
            path.write_text(path.read_text() + f"\n{comment} an edit\n")

        def __exit__(self, *exc):
            shutil.copy2(backup, path)

    return _Edit()


@pytest.mark.slow
@pytest.mark.parametrize(
    "rel,expected",
    [
        ("workflow/scripts/icl/figure_icl_accuracy.py", {"figure_icl_accuracy", "paper", "check_paper", "all"}),
        ("paper/main.tex", {"paper", "check_paper", "all"}),
        ("paper/iclgd.sty", {"paper", "check_paper", "all"}),
    ],
)
def test_an_edit_reruns_only_its_target_and_the_paper(e2e, tmp_path, rel, expected):
    assert planned_jobs(e2e) == set()
    with edited(e2e, rel, tmp_path):
        assert planned_jobs(e2e) == expected
    assert planned_jobs(e2e) == set()


@pytest.mark.slow
def test_a_metric_edit_reruns_analysis_but_not_inference(e2e, tmp_path):
    with edited(e2e, "src/iclgd/core/metrics.py", tmp_path):
        jobs = planned_jobs(e2e)
    assert {"icl_metrics", "finetune_metrics", "icl_paper_numbers", "figure_icl_accuracy", "macros", "paper"} <= jobs
    assert not jobs & HEAVY
    assert planned_jobs(e2e) == set()

"""The Snakemake DAG as a whole: an end-to-end run on fixture data, lint, dry runs, bad configs.

The end-to-end run uses the tiny random Llama (real SmolLM2 tokenizer) on two small fixture
datasets written here, and builds the PDF with latexmk, exactly as `make reproduce` does.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from pipeline_support import REPO, SNAKEMAKE, snakemake, write_test_config

#: The rules every full DAG plans (matched as whole rule names, never as substrings).
CORE_RULES = {"prepare_data", "prepare_model", "build_prompts", "icl", "finetune", "labels",
              "kernel", "order", "dai", "lsa_study", "claims", "paper"}


def job_counts(stdout: str) -> dict[str, int]:
    """The dry run's "Job stats" table: rule name -> number of planned jobs."""
    table = stdout[stdout.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)
            if m.group(1) != "total"}


def planned_jobs(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run prints."""
    jobs = []
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", stdout, flags=re.MULTILINE):
        head = re.match(r"(?:local)?rule (\w+):$", block, re.MULTILINE)
        if head:
            found = re.search(r"^\s+wildcards: (.*)$", block, re.MULTILINE)
            pairs = [kv.split("=", 1) for kv in found.group(1).split(", ")] if found else []
            jobs.append((head.group(1), dict(pairs)))
    return jobs


def config_args(tmp_path: Path, configfile: str | None = None, *entries: str) -> list[str]:
    """--configfile and --config arguments; the data come from ../shared/data when present, else a
    stand-in directory (a dry run reads no data)."""
    mirror = REPO.parent / "shared" / "data"
    entries = (*entries, *([] if mirror.is_dir() else [f"data={{mirror_dir: {tmp_path}}}"]))
    return [*(["--configfile", str(REPO / configfile)] if configfile else []), *(["--config", *entries] if entries else [])]


@pytest.mark.slow
def test_end_to_end_builds_the_paper(e2e):
    pdf = e2e / "paper" / "main.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    built = [
        "figures/icl_accuracy_vs_k.pdf", "figures/icl_accuracy_vs_k.png", "figures/lsa_convergence.pdf",
        "figures/weight_sparsity.pdf", "results/metrics/icl_accuracy.csv", "results/metrics/icl_vs_finetune.csv",
        "results/icl/tiny-llama/toy_nli.parquet", "results/finetune/tiny-llama/toy_nli.parquet",
        "results/labels/tiny-llama/novel/claims.csv", "figures/label_curves.pdf",
        "paper/generated/tab_label_claims.tex",
        "paper/generated/macros.tex", "paper/generated/tab_icl_vs_ft.tex", "paper/generated/tab_sparsity.tex",
        "results/kernel/tiny-llama/toy_sent/summary.csv", "figures/kernel_heads.pdf", "paper/generated/tab_kernel.tex", "paper/generated/kernel_summary.tex",
    ]
    for rel in built:
        assert (e2e / rel).stat().st_size > 0, rel
    log = (e2e / "paper" / "build" / "main.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "undefined references" not in log
    # the paper as its reader sees it (rule check_paper): no problems, every figure placed and cited
    check = json.loads((e2e / "results" / "paper" / "build_check.json").read_text())
    assert check["problems"] == [] and check["pages"] > 5
    figures = {k: v for k, v in check["floats"].items() if k.startswith("fig:")}
    assert {"fig:order", "fig:curves", "fig:kernel", "fig:icl"} <= set(figures)
    assert all(0 <= v["page"] - v["first_ref"] <= 1 for v in figures.values()), figures


@pytest.mark.slow
def test_second_run_has_nothing_to_do(e2e):
    result = snakemake(e2e, "--configfile", str(e2e / "config.yaml"), "-n", snakefile=e2e / "repo" / "Snakefile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_outputs_are_deterministic(e2e, tmp_path):
    """Same config -> byte-identical records and tables (a fresh run in another directory)."""
    config = write_test_config(tmp_path)
    targets = ["results/metrics/icl_accuracy.csv", "results/icl/tiny-llama/toy_sent.parquet"]
    result = snakemake(tmp_path, *targets, "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-4000:]
    for rel in targets:
        assert (tmp_path / rel).read_bytes() == (e2e / rel).read_bytes(), rel


def test_snakefmt_is_clean():
    """`make lint`'s second half: the rule files keep snakefmt's format."""
    snakefmt = Path(SNAKEMAKE[0]).parent / "snakefmt"
    if not snakefmt.exists():
        pytest.skip("snakefmt not installed next to python")
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/rules"], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_is_clean():
    result = subprocess.run([*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--lint"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("configfile", [None, "config/smoke.yaml", "config/paper.yaml", "config/decisive.yaml"])
def test_shipped_configs_dry_run(tmp_path, configfile):
    """Every shipped config resolves to a DAG that plans every study's run."""
    result = snakemake(tmp_path, "-n", "--quiet", "rules", *config_args(tmp_path, configfile))
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert CORE_RULES <= set(counts), CORE_RULES - set(counts)


def test_paper_overlay_runs_every_job_of_the_published_dag(tmp_path):
    """config/paper_tiny.yaml swaps models and sizes only: the same jobs (rule + wildcards) as config/paper.yaml,
    so running it (make paper-dag, the cluster test) executes every rule and grid point of the published run."""
    published = snakemake(tmp_path, "-n", *config_args(tmp_path, "config/paper.yaml"))
    overlay = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "paper.yaml"),
                        str(REPO / "config" / "paper_tiny.yaml"), *config_args(tmp_path))
    assert published.returncode == 0 and overlay.returncode == 0, overlay.stderr[-3000:]
    jobs = sorted(planned_jobs(published.stdout), key=repr)
    assert len(jobs) > 200 and jobs == sorted(planned_jobs(overlay.stdout), key=repr)


def test_job_counts_match_whole_rule_names():
    """`icl` is planned only if a row says icl, not because icl_metrics is."""
    table = "Job stats:\njob            count\n-----------  -------\nicl_metrics      1\ntotal            1\n"
    assert job_counts(table) == {"icl_metrics": 1} and "icl" not in job_counts(table)


def test_datasets_alone_runs_the_smoke_config_on_that_dataset(tmp_path):
    """--config datasets='[trec]' alone: every study falls back to TREC (the log says so), nothing else."""
    result = snakemake(tmp_path, "-n", *config_args(tmp_path, "config/smoke.yaml", "datasets=[trec]"))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout)
    assert CORE_RULES <= {rule for rule, _ in jobs}
    datasets = {wildcards["dataset"] for _, wildcards in jobs if "dataset" in wildcards}
    assert datasets == {"trec"}
    assert "config key kernel.datasets: ['sst2'] names none of datasets ['trec']" in result.stdout + result.stderr


@pytest.mark.parametrize("override", ["icl={n_demos: [0, 2]}", "icl={n_demos: [0, 2], demo_seeds: [0, 1]}"])
def test_icl_n_demos_can_be_changed_alone(tmp_path, override):
    """The other blocks follow (dai.n_demos within icl's; order's prompt set built anyway); the rest of the
    icl block keeps its defaults when --config gives only part of it."""
    result = snakemake(tmp_path, "-n", *config_args(tmp_path, "config/smoke.yaml", override))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result.stdout)
    assert CORE_RULES <= {rule for rule, _ in jobs}
    assert {w["dataset"] for rule, w in jobs if rule == "build_prompts"} == {"sst2", "rte"}


@pytest.mark.parametrize(
    "override,expected",
    [
        ({"icl": {"n_demos": [0, 2], "demo_seeds": [0], "shots": 3}}, "shots"),
        ({"icl": {"k": [0, 2]}}, "'k' was unexpected"),
        ({"data": {"n_test": "many"}}, "n_test"),
        ({"runtime": {"batch_size": 0}}, "batch_size"),
        ({"use_models": ["gpt-5"]}, "use_models"),
        ({"datasets": ["imdb"]}, "datasets"),
        ({"construction": {"macro_threshold": 0.5}}, "macro_threshold"),
        ({"finetune": {"models": ["gpt-5"]}}, "finetune.models"),
        ({"finetune": {"optimizers": ["rmsprop"]}}, "rmsprop"),
        ({"finetune": {"lrs_by_model": {"smollm2": [1.0e-3]}}}, "finetune.lrs_by_model"),
        ({"finetune": {"epochs": 3}}, "epochs"),
        ({"finetune": {"target_loss": 0}}, "target_loss"),
        ({"labels": {"datasets": ["imdb"]}}, "labels.datasets"),
        ({"labels": {"novel": {"sources": ["sst2", "imdb"]}}}, "labels.novel.sources"),
        ({"construction": {"lsa": {"step": 10}}}, "step"),
        ({"control": {"models": ["gemma3-270m"]}}, "control.models"),
        ({"control": {"datasets": ["imdb"]}}, "control.datasets"),
        ({"kernel": {"extras_datasets": ["imdb"]}}, "kernel.extras_datasets"),
        ({"order": {"n_demos": 2, "orderings": 3}}, "order.orderings"),
        ({"kernel": {"n_demos": 16, "knn_pool": 8}}, "kernel.knn_pool"),
        ({"models": {"x-untrained": {"source": "untrained", "like": "nope"}}}, "models.x-untrained.like"),
    ],
)
def test_bad_config_fails_at_start_naming_the_key(tmp_path, override, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(override))
    result = snakemake(tmp_path, "-n", "--configfile", str(path))
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_environment_yml_matches_requirements():
    """conda users get the same pins as `make venv`."""
    pins = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert sorted(p for p in pip if "==" in p) == sorted(pins)
    assert "python=3.11" in env["dependencies"]

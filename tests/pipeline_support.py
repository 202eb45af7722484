"""Fixture data, the test config and a private copy of the workflow for end-to-end pipeline runs.

The end-to-end run works on a copy of the workflow (Snakefile, rules, scripts, config, paper
sources, library sources as rule inputs) so tests can edit files and dry-run the incremental
rebuild without touching the repository.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from iclgd.tools.compare_runs import MEASURED

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
#: What a workflow copy holds: everything the DAG reads from the repository.
WORKFLOW_FILES = ["Snakefile", "environment.yml", "workflow", "config", "paper/main.tex", "paper/refs.bib", "paper/iclgd.sty", "src/iclgd"]


POSITIVE = ["a gem", "great fun", "moving and wise", "a delight", "sharp and funny", "superb cast"]
NEGATIVE = ["a mess", "dull", "flat and tired", "a bore", "clumsy", "painfully slow"]


def fixture_files() -> dict[str, bytes]:
    sentiment = [f"{label} {text} , number {i} .\n" for i in range(4)
                 for label, texts in (("0", NEGATIVE), ("1", POSITIVE)) for text in texts]
    nli = [
        f'{{"premise": "The cat sat on mat {i}.", "hypothesis": "{h}", "label": "{lab}", "idx": {i}}}\n'
        for i in range(12)
        for h, lab in (("A cat sat.", "entailment"), ("No cat sat.", "not_entailment"))
    ]
    return {
        "toy_sent/all.txt": "".join(sentiment).encode(),
        "toy_nli/train.jsonl": "".join(nli[:16]).encode(),
        "toy_nli/val.jsonl": "".join(nli[16:]).encode(),
    }


def fixture_registry(files: dict[str, bytes]) -> dict:
    sha = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    binary = {"negative": "negative", "positive": "positive"}
    return {
        "toy_sent": {
            "format": "label_text",
            "files": {"all": "toy_sent/all.txt"},
            "holdout": {"test_fraction": 0.25, "seed": 0},
            "fields": ["text"],
            "classes": ["negative", "positive"],
            "label_map": {"0": "negative", "1": "positive"},
            "verbalizer": binary,
            "template": "Review: {text}\nSentiment:",
            "sha256": {"toy_sent/all.txt": sha["toy_sent/all.txt"]},
        },
        "toy_nli": {
            "format": "jsonl",
            "files": {"train": "toy_nli/train.jsonl", "test": "toy_nli/val.jsonl"},
            "fields": ["premise", "hypothesis"],
            "classes": ["entailment", "not_entailment"],
            "label_map": {"entailment": "entailment", "not_entailment": "not_entailment"},
            "verbalizer": {"entailment": "true", "not_entailment": "false"},
            "template": "{premise}\nQuestion: {hypothesis} True or False?\nAnswer:",
            "sha256": {k: v for k, v in sha.items() if k.startswith("toy_nli")},
        },
    }


def write_test_config(tmp: Path) -> Path:
    """A config for the whole DAG on fixture data with the tiny model; returns its path."""
    files = fixture_files()
    for rel, data in files.items():
        (tmp / "mirror" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "mirror" / rel).write_bytes(data)
    (tmp / "registry.yaml").write_text(yaml.safe_dump(fixture_registry(files)))
    config = {
        "data": {"mirror_dir": str(tmp / "mirror"), "registry": str(tmp / "registry.yaml"), "n_test": 6},
        "datasets": ["toy_sent", "toy_nli"],
        "use_models": ["tiny-llama"],
        "models": {"tiny-untrained": {"source": "untrained", "like": "tiny-llama", "seed": 1}},
        "control": {"models": ["tiny-untrained"], "datasets": ["toy_sent"]},
        "icl": {"n_demos": [0, 2], "demo_seeds": [0, 1]},
        "metrics": {"n_boot": 200},
        "claims": {"n_sim": 200},
        "runtime": {"threads": 1, "batch_size": 4},
        "labels": {"models": [], "datasets": ["toy_sent", "novel"], "n_demos": 5, "repetitions": 3,
                   "novel": {"sources": ["toy_sent", "toy_nli"]}},
        "finetune": {"models": [], "lrs": [0.0, 0.01], "max_epochs": 60, "target_loss": 0.3, "dev_size": 4},
        "kernel": {"models": [], "datasets": ["toy_sent"], "n_demos": 4, "n_prompt_sets": 2, "probe_offsets": [-1, 0, 1],
                   "n_train_queries": 6, "knn": True, "knn_pool": 8, "symbols": ["^", "~", "|"],
                   "extras_datasets": ["toy_sent"]},
        "order": {"models": [], "datasets": ["toy_sent"], "n_demos": 2, "orderings": 2, "epochs": 2, "n_queries": 4,
                  "lrs": {"gd": 0.05, "sgd": 0.025, "adam": 1.0e-3}},
        "dai": {"models": [], "datasets": ["toy_sent"], "n_demos": [2], "demo_seeds": [0], "lr": 0.01, "n_queries": 4},
        "construction": {"lsa": {"steps": 40, "batch_size": 256, "eval_every": 20, "n_eval": 512,
                                 "n_lr_search": 1024, "order_tasks": 32, "order_perms": 4}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile") -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(snakefile), "--directory", str(workdir), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)


def copy_workflow(dest: Path) -> Path:
    """A private copy of the workflow's files under `dest`; returns its Snakefile."""
    for rel in WORKFLOW_FILES:
        src, out = REPO / rel, dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, out, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, out)
    return dest / "Snakefile"



#: What two runs of one config may differ in: the run's own measurements (wall times, peak memory: the
#: pattern `make verify` skips too) and its provenance (host, start time, benchmarks). Everything else
#: must be byte-identical.
PROVENANCE = {"results/paper/provenance.json", "results/paper/macros/provenance.json",
              "paper/generated/appendix_provenance.tex"}
RUN_OUTPUTS = ["results", "paper/generated", "figures"]


def _drop_measured(value):
    if isinstance(value, dict):
        return {k: _drop_measured(v) for k, v in value.items() if not MEASURED.search(k)}
    if isinstance(value, list):
        return [_drop_measured(v) for v in value]
    return value


def comparable(rel: str, data: bytes) -> bytes:
    """A run output with the run's own measurements removed (JSON keys, CSV columns, macro lines)."""
    if rel.endswith(".json"):
        return json.dumps(_drop_measured(json.loads(data)), sort_keys=True).encode()
    if rel.endswith(".csv"):
        rows = list(csv.reader(io.StringIO(data.decode())))
        keep = [i for i, name in enumerate(rows[0] if rows else []) if not MEASURED.search(name)]
        if rows and len(keep) < len(rows[0]):
            buffer = io.StringIO()
            csv.writer(buffer).writerows([[row[i] for i in keep] for row in rows])
            return buffer.getvalue().encode()
    if rel.endswith("macros.tex"):
        return b"\n".join(line for line in data.splitlines() if b"{\\Bench" not in line)
    return data


def run_outputs(root: Path) -> dict[str, bytes]:
    """Every result, generated table and figure of a run (relative path -> comparable bytes)."""
    out = {}
    for top in RUN_OUTPUTS:
        for path in sorted((root / top).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel not in PROVENANCE:
                out[rel] = comparable(rel, path.read_bytes())
    return out

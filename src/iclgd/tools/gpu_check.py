"""Compare a GPU run of the smoke config with the CPU run: same records, close label log-probs?

The CPU default runs float32; a GPU runs bf16 (`runtime.dtype: auto`). Before the paper's numbers come
from a GPU, the two must agree on the same prompts: per (model, results file) this reports the largest
and mean absolute difference of the label log-probs, their Pearson correlation, and the fraction of
queries whose predicted label (argmax over the label words) agrees; plus each run's total benchmarked
wall time and peak RSS (Snakemake's benchmark TSVs) and the GPU's peak memory (an nvidia-smi log).
Rows are joined on the records' identifying columns; runs that do not hold the same rows fail.

    python -m iclgd.tools.gpu_check --cpu-run runs/smoke --gpu-run runs/gpu-smoke \
        --gpu-log runs/gpu-smoke/nvidia-smi.csv --out runs/gpu-check.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

#: What makes a record unique (forward.RECORD_COLUMNS minus the measured values).
KEYS = ["model", "dataset", "method", "k", "seed", "order", "optimizer", "subset", "lr", "epoch", "uid"]


class CheckError(ValueError):
    """Two runs that cannot be compared row by row (different files, rows or duplicate keys)."""


def icl_files(run: Path) -> dict[tuple[str, str], Path]:
    """(model, file stem) -> results/icl/<model>/<stem>.parquet (stems: sst2, sst2.permuted, ...)."""
    files = sorted(Path(run, "results", "icl").glob("*/*.parquet"))
    return {(f.parent.name, f.name.removesuffix(".parquet")): f for f in files}


def _keyed(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [k for k in KEYS if k not in frame.columns]
    if missing:
        raise CheckError(f"{where}: no columns {missing}")
    dup = frame.duplicated(KEYS)
    if dup.any():
        raise CheckError(f"{where}: {int(dup.sum())} rows share their key, e.g. {frame.loc[dup, KEYS].iloc[0].to_dict()}")
    return frame.set_index(KEYS).sort_index()


def joined(cpu: pd.DataFrame, gpu: pd.DataFrame, where: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames indexed by KEYS in the same order; CheckError naming the rows one side lacks."""
    a, b = _keyed(cpu, f"{where} (cpu)"), _keyed(gpu, f"{where} (gpu)")
    only_cpu, only_gpu = a.index.difference(b.index), b.index.difference(a.index)
    if len(only_cpu) or len(only_gpu):
        example = (only_cpu if len(only_cpu) else only_gpu)[0]
        raise CheckError(f"{where}: the runs hold different rows ({len(only_cpu)} only on cpu, {len(only_gpu)} only "
                         f"on gpu), e.g. {dict(zip(KEYS, example))}")
    b = b.loc[a.index]
    if not (a["label"].to_numpy() == b["label"].to_numpy()).all():
        raise CheckError(f"{where}: same keys but different gold labels: the runs read different data")
    return a, b


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; nan when either side is constant."""
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def compare_records(cpu: pd.DataFrame, gpu: pd.DataFrame, where: str = "records") -> dict[str, Any]:
    """Agreement of one results file's label log-probs between the runs."""
    a, b = joined(cpu, gpu, where)
    x, y = np.stack(a["label_logprobs"].to_numpy()), np.stack(b["label_logprobs"].to_numpy())
    if x.shape != y.shape:
        raise CheckError(f"{where}: label log-probs have shapes {x.shape} (cpu) and {y.shape} (gpu)")
    diff = np.abs(x.astype(np.float64) - y)
    return {
        "rows": len(a),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        "pearson": pearson(x.ravel().astype(np.float64), y.ravel().astype(np.float64)),
        "argmax_agreement": float((x.argmax(axis=1) == y.argmax(axis=1)).mean()),
        "accuracy_cpu": float((x.argmax(axis=1) == a["label_index"].to_numpy()).mean()),
        "accuracy_gpu": float((y.argmax(axis=1) == b["label_index"].to_numpy()).mean()),
    }


def compare_losses(reference: Sequence[float], other: Sequence[float], where: str = "losses") -> dict[str, Any]:
    """Agreement of two training-loss curves (one mean loss per epoch, as `training.train` returns them):
    largest absolute and relative (to the reference's value) difference, and both final losses."""
    a, b = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if a.shape != b.shape:
        raise CheckError(f"{where}: {len(a)} epochs (reference) vs {len(b)} (other)")
    diff = np.abs(a - b)
    rel = diff / np.maximum(np.abs(a), 1e-12)
    return {
        "epochs": len(a),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "max_rel_diff": float(rel.max()) if rel.size else 0.0,
        "final_reference": float(a[-1]) if a.size else None,
        "final_other": float(b[-1]) if b.size else None,
    }


def summarize(records: Sequence[dict[str, Any]], losses: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The worst case over several `compare_records` (and `compare_losses`) results."""
    out = {"max_abs_diff_logprob": max(r["max_abs_diff"] for r in records),
           "mean_abs_diff_logprob": float(np.mean([r["mean_abs_diff"] for r in records])),
           "min_argmax_agreement": min(r["argmax_agreement"] for r in records)}
    if losses:
        out |= {"max_loss_abs_diff": max(c["max_abs_diff"] for c in losses),
                "max_loss_rel_diff": max(c["max_rel_diff"] for c in losses)}
    return out


def compare_runs(cpu_run: Path, gpu_run: Path) -> list[dict[str, Any]]:
    """One comparison per ICL results file; the runs must hold the same files."""
    cpu, gpu = icl_files(cpu_run), icl_files(gpu_run)
    if not cpu:
        raise CheckError(f"{cpu_run}/results/icl holds no records")
    if cpu.keys() != gpu.keys():
        raise CheckError(f"the runs hold different results files: only cpu {sorted(cpu.keys() - gpu.keys())}, "
                         f"only gpu {sorted(gpu.keys() - cpu.keys())}")
    out = []
    for (model, stem), path in cpu.items():
        where = f"results/icl/{model}/{stem}.parquet"
        out.append({"model": model, "file": stem} | compare_records(pd.read_parquet(path), pd.read_parquet(gpu[model, stem]), where))
    return out


def benchmarks(run: Path) -> dict[str, Any]:
    """Sum of wall seconds (`s`) and largest `max_rss` (MB) over the run's Snakemake benchmark TSVs."""
    tables = [(p, pd.read_csv(p, sep="\t")) for p in sorted(Path(run, "benchmarks").rglob("*.tsv"))]
    if not tables:
        return {"jobs": 0, "wall_s": 0.0, "max_rss_mb": None, "by_rule_s": {}}
    by_rule: dict[str, float] = {}
    for path, table in tables:
        rule = path.relative_to(Path(run, "benchmarks")).parts[0].removesuffix(".tsv")
        by_rule[rule] = by_rule.get(rule, 0.0) + float(table["s"].sum())
    rss = pd.to_numeric(pd.concat([t["max_rss"] for _, t in tables]), errors="coerce")  # "-" when unmeasured
    return {"jobs": len(tables), "wall_s": round(sum(by_rule.values()), 2),
            "max_rss_mb": None if rss.isna().all() else float(rss.max()),
            "by_rule_s": {k: round(v, 2) for k, v in sorted(by_rule.items())}}


def gpu_peak_memory(log: Path) -> dict[str, Any]:
    """Largest memory.used (MiB) in `nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,
    nounits -lms 500` output; lines that do not parse (a cut-off last line) are counted, not fatal."""
    values, skipped = [], 0
    for line in Path(log).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            values.append(float(line.rsplit(",", 1)[1]))
        except (IndexError, ValueError):
            skipped += 1
    if not values:
        raise CheckError(f"{log}: no memory.used samples (is it nvidia-smi's csv,noheader,nounits output?)")
    return {"peak_mib": max(values), "samples": len(values), "skipped_lines": skipped}


def check(cpu_run: Path, gpu_run: Path, gpu_log: Path | None = None) -> dict[str, Any]:
    """The whole report: per-file agreement, the worst case over files, timings, GPU memory."""
    pairs = compare_runs(cpu_run, gpu_run)
    report: dict[str, Any] = {
        "cpu_run": str(cpu_run), "gpu_run": str(gpu_run), "records": pairs,
        "worst": {"max_abs_diff": max(p["max_abs_diff"] for p in pairs),
                  "min_pearson": min(p["pearson"] for p in pairs),
                  "min_argmax_agreement": min(p["argmax_agreement"] for p in pairs)},
        "benchmarks": {"cpu": benchmarks(cpu_run), "gpu": benchmarks(gpu_run)},
    }
    if gpu_log is not None:
        report["gpu_memory"] = gpu_peak_memory(gpu_log)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-run", type=Path, required=True, help="the float32 CPU run's directory")
    parser.add_argument("--gpu-run", type=Path, required=True, help="the GPU run's directory")
    parser.add_argument("--gpu-log", type=Path, help="nvidia-smi csv,noheader,nounits memory log")
    parser.add_argument("--out", type=Path, required=True, help="the report (JSON)")
    args = parser.parse_args(argv)
    try:
        report = check(args.cpu_run, args.gpu_run, args.gpu_log)
    except CheckError as exc:
        parser.exit(2, f"gpu_check: {exc}\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for p in report["records"]:
        print(f"{p['model']:>24} {p['file']:<16} rows {p['rows']:>4}  max|d| {p['max_abs_diff']:.4f}  "
              f"mean|d| {p['mean_abs_diff']:.4f}  r {p['pearson']:.5f}  agree {p['argmax_agreement']:.3f}")
    bench = report["benchmarks"]
    print(f"wall s: cpu {bench['cpu']['wall_s']}, gpu {bench['gpu']['wall_s']}; "
          f"peak GPU memory MiB: {report.get('gpu_memory', {}).get('peak_mib')}")


if __name__ == "__main__":
    main()

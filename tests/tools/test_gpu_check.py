"""GPU-vs-CPU smoke comparison on hand-built runs: identical, perturbed by hand, and mismatched rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iclgd.tools import gpu_check
from iclgd.core.forward import RECORD_COLUMNS

# label log-probs of four SST-2 queries (two classes); gold: negative, positive, positive, negative
LOGPROBS = [[-0.5, -1.0], [-2.0, -0.25], [-1.5, -0.75], [-0.1, -3.0]]
GOLD = [0, 1, 1, 0]


def records(logprobs: list[list[float]], model: str = "m", dataset: str = "sst2", k: int = 4) -> pd.DataFrame:
    n = len(logprobs)
    frame = pd.DataFrame({
        "model": model, "dataset": dataset, "method": "icl", "k": k, "seed": 0, "order": 0, "optimizer": "none",
        "subset": "none", "lr": 0.0, "epoch": 0, "uid": np.arange(n) + 100,
        "label": [["negative", "positive"][g] for g in GOLD[:n]], "label_index": GOLD[:n],
        "pred_index": np.argmax(logprobs, axis=1), "label_logprobs": [np.array(r, np.float32) for r in logprobs],
        "argmax_id": 0, "argmax_token": "x", "full_correct": False, "top10_ids": [np.zeros(10, int)] * n,
        "top10_probs": [np.zeros(10, np.float32)] * n, "n_tokens": 20,
    })
    return frame[RECORD_COLUMNS]


def make_run(root: Path, logprobs: list[list[float]], seconds: tuple[float, ...] = (10.0, 2.5),
             rss: tuple[float, ...] = (1000.0, 3000.0), shuffle: bool = False) -> Path:
    (root / "results" / "icl" / "m").mkdir(parents=True)
    frame = records(logprobs)
    if shuffle:  # the join must not depend on row order
        frame = frame.iloc[::-1]
    frame.to_parquet(root / "results" / "icl" / "m" / "sst2.parquet", index=False)
    for i, (s, r) in enumerate(zip(seconds, rss)):
        path = root / "benchmarks" / ("icl" if i == 0 else "finetune") / "m" / "sst2.tsv"
        path.parent.mkdir(parents=True)
        path.write_text(f"s\th:m:s\tmax_rss\tmax_vms\n{s}\t0:00:{int(s):02d}\t{r}\t{2 * r}\n")
    return root


def test_identical_runs_agree_exactly(tmp_path):
    cpu, gpu = make_run(tmp_path / "cpu", LOGPROBS), make_run(tmp_path / "gpu", LOGPROBS, shuffle=True)
    report = gpu_check.check(cpu, gpu)
    (pair,) = report["records"]
    assert (pair["model"], pair["file"], pair["rows"]) == ("m", "sst2", 4)
    assert pair["max_abs_diff"] == pair["mean_abs_diff"] == 0.0
    assert pair["argmax_agreement"] == 1.0 and pair["pearson"] == pytest.approx(1.0)
    assert pair["accuracy_cpu"] == pair["accuracy_gpu"] == 1.0
    assert report["benchmarks"]["cpu"] == {"jobs": 2, "wall_s": 12.5, "max_rss_mb": 3000.0,
                                           "by_rule_s": {"finetune": 2.5, "icl": 10.0}}


def test_a_perturbed_run_by_hand(tmp_path):
    perturbed = [[-0.5, -1.0], [-2.0, -0.25], [-0.5, -0.75], [-0.1, -3.5]]  # query 3 flips; query 4 moves by 0.5
    report = gpu_check.check(make_run(tmp_path / "cpu", LOGPROBS), make_run(tmp_path / "gpu", perturbed))
    (pair,) = report["records"]
    assert pair["max_abs_diff"] == pytest.approx(1.0)  # |-1.5 - (-0.5)|
    assert pair["mean_abs_diff"] == pytest.approx((1.0 + 0.5) / 8)
    assert pair["argmax_agreement"] == 0.75 and pair["accuracy_gpu"] == 0.75
    x, y = np.ravel(LOGPROBS), np.ravel(perturbed)
    r = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert pair["pearson"] == pytest.approx(r)
    assert report["worst"] == {"max_abs_diff": pair["max_abs_diff"], "min_pearson": pair["pearson"],
                               "min_argmax_agreement": 0.75}


def test_runs_with_different_rows_fail_clearly(tmp_path):
    cpu = make_run(tmp_path / "cpu", LOGPROBS)
    with pytest.raises(gpu_check.CheckError, match=r"different rows \(1 only on cpu, 0 only on gpu\)"):
        gpu_check.check(cpu, make_run(tmp_path / "gpu", LOGPROBS[:3]))


def test_runs_with_different_files_fail_clearly(tmp_path):
    cpu, gpu = make_run(tmp_path / "cpu", LOGPROBS), make_run(tmp_path / "gpu", LOGPROBS)
    records(LOGPROBS, dataset="rte").to_parquet(gpu / "results" / "icl" / "m" / "rte.parquet", index=False)
    with pytest.raises(gpu_check.CheckError, match=r"different results files: only cpu \[\], only gpu \[\('m', 'rte'\)\]"):
        gpu_check.check(cpu, gpu)


def test_duplicate_keys_fail(tmp_path):
    cpu = make_run(tmp_path / "cpu", LOGPROBS)
    path = cpu / "results" / "icl" / "m" / "sst2.parquet"
    pd.concat([pd.read_parquet(path)] * 2).to_parquet(path, index=False)
    with pytest.raises(gpu_check.CheckError, match="share their key"):
        gpu_check.check(cpu, make_run(tmp_path / "gpu", LOGPROBS))


def test_nvidia_smi_log_peak(tmp_path):
    log = tmp_path / "smi.csv"
    log.write_text("2026/12/05 10:00:00.000, 512\n2026/12/05 10:00:00.500, 20480\n\n"
                   "2026/12/05 10:00:01.000, 18000\n2026/12/05 10:00:01.5")  # a cut-off last line
    assert gpu_check.gpu_peak_memory(log) == {"peak_mib": 20480.0, "samples": 3, "skipped_lines": 1}
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(gpu_check.CheckError, match="no memory.used samples"):
        gpu_check.gpu_peak_memory(tmp_path / "empty.csv")


def test_cli_writes_the_report_and_exits_2_on_mismatch(tmp_path, capsys):
    cpu, gpu = make_run(tmp_path / "cpu", LOGPROBS), make_run(tmp_path / "gpu", LOGPROBS)
    log = tmp_path / "smi.csv"
    log.write_text("t, 100\nt, 300\n")
    out = tmp_path / "check.json"
    gpu_check.main(["--cpu-run", str(cpu), "--gpu-run", str(gpu), "--gpu-log", str(log), "--out", str(out)])
    assert json.loads(out.read_text())["gpu_memory"]["peak_mib"] == 300.0
    assert "agree 1.000" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        gpu_check.main(["--cpu-run", str(cpu), "--gpu-run", str(tmp_path / "none"), "--out", str(out)])
    assert exit_.value.code == 2 and "different results files" in capsys.readouterr().err


def test_loss_curves_compared_epoch_by_epoch():
    same = gpu_check.compare_losses([0.9, 0.5, 0.25], [0.9, 0.5, 0.25])
    assert same == {"epochs": 3, "max_abs_diff": 0.0, "max_rel_diff": 0.0, "final_reference": 0.25, "final_other": 0.25}
    moved = gpu_check.compare_losses([0.9, 0.5, 0.25], [0.9, 0.625, 0.25])  # epoch 2 off by 0.125 = 25 %
    assert moved["max_abs_diff"] == pytest.approx(0.125) and moved["max_rel_diff"] == pytest.approx(0.25)
    with pytest.raises(gpu_check.CheckError, match=r"ft: 3 epochs \(reference\) vs 2 \(other\)"):
        gpu_check.compare_losses([0.9, 0.5, 0.25], [0.9, 0.5], "ft")


def test_summarize_takes_the_worst_case(tmp_path):
    same = gpu_check.compare_records(records(LOGPROBS), records(LOGPROBS))
    moved = gpu_check.compare_records(records(LOGPROBS), records([[-0.5, -1.0], [-2.0, -0.25], [-0.5, -0.75], [-0.1, -3.5]]))
    losses = [gpu_check.compare_losses([1.0, 0.5], [1.0, 0.5]), gpu_check.compare_losses([1.0, 0.5], [1.0, 0.75])]
    assert gpu_check.summarize([same, moved], losses) == {
        "max_abs_diff_logprob": 1.0, "mean_abs_diff_logprob": pytest.approx(1.5 / 8 / 2), "min_argmax_agreement": 0.75,
        "max_loss_abs_diff": 0.25, "max_loss_rel_diff": 0.5}
    assert "max_loss_abs_diff" not in gpu_check.summarize([same])

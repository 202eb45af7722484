"""The cost table's arithmetic: token counts of every study on a tiny config, by hand; the FLOP model; wall
time; a measured costs file; measured epochs; and config/paper.yaml's fine-tuning grid."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from iclgd.tools import cost, token_lengths
from iclgd.core.config import resolve
from iclgd.core.config_files import load_config

REPO = Path(__file__).resolve().parents[2]
#: Hand-picked lengths (not a tokenizer's): demo / query tokens, BOS, test split size.
LENGTHS = {"sst2": token_lengths.TokenLengths(demo=10, query=5, special=1, n_test=6),
           "agnews": token_lengths.TokenLengths(demo=20, query=8, special=1, n_test=4)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Default config (smollm2-135m + its untrained control on sst2) with every study shrunk."""
    blocks = {
        "data": {"mirror_dir": str(tmp_path_factory.mktemp("mirror"))},
        "use_models": ["smollm2-135m"], "datasets": ["sst2", "agnews"],
        "icl": {"n_demos": [0, 2], "demo_seeds": [0, 1], "permuted": {"orders": 1, "n_queries": 3}},
        "finetune": {"optimizers": ["gd", "sgd"], "subsets": ["all"], "lrs": [1e-3], "lrs_by_model": {},
                     "max_epochs": 4, "dev_size": 2},
        "order": {"models": [], "datasets": ["agnews"], "n_demos": 2, "orderings": 2, "epochs": 3, "eval_every": 2,
                  "n_queries": 2, "optimizers": ["gd", "sgd"]},
        "kernel": {"datasets": ["sst2"], "n_demos": 2, "n_prompt_sets": 2, "n_queries": None, "n_train_queries": 1,
                   "knn": True, "knn_pool": 2, "select_fraction": 0.7, "symbols": ["^", "~"], "extras_datasets": []},
        "labels": {"datasets": ["sst2"], "n_demos": 3, "repetitions": 2, "conditions": ["default", "flipped", "words"],
                   "replacement_words": [["A", "B"], ["A", "B", "C"]]},
        "dai": {"datasets": ["sst2"], "n_demos": [2], "demo_seeds": [0], "n_queries": 16},
    }
    config = load_config(REPO, *({k: v} for k, v in blocks.items()))
    return config, resolve(config, REPO)


def one(jobs: list[cost.Job], model: str, dataset: str) -> cost.Job:
    (job,) = [j for j in jobs if (j.model, j.dataset) == (model, dataset)]
    return job


def test_icl_tokens_by_hand(tiny):
    config, run = tiny
    jobs = cost.icl_jobs(run, config, LENGTHS)
    assert {(j.model, j.dataset) for j in jobs} == {("smollm2-135m", "sst2"), ("smollm2-135m", "agnews"),
                                                    ("smollm2-135m-untrained", "sst2")}
    # k=0: one set (1 + 6 x 5) = 31; k=2: 2 sets x (1 + 2 x 10 + 30) = 102; permuted: 2 x (21 + 3 x 5) = 72
    assert one(jobs, "smollm2-135m", "sst2").scored == 31 + 102 + 72
    # agnews: (1 + 32) + 2 x (41 + 32) + 2 x (41 + 3 x 8)
    assert one(jobs, "smollm2-135m", "agnews").scored == 33 + 146 + 130


def test_finetune_tokens_by_hand(tiny):
    config, run = tiny
    assert run.pairs["finetune"] == (("smollm2-135m", "sst2"), ("smollm2-135m", "agnews"), ("smollm2-135m-untrained", "sst2"))
    job = one(cost.finetune_jobs(run, config, LENGTHS, cost.Epochs(lambda o, s: 4)), "smollm2-135m", "sst2")
    # 2 seeds x 1 lr = 2 runs per optimizer, k = 2, 4 epochs: 2 x 4 x 2 x 10 tokens each
    assert job.runs == 4 and job.trained == {"all/gd": 160, "all/sgd": 160}
    assert job.steps == {"all/gd": 2 * 4, "all/sgd": 2 * 4 * 2}  # gd one step an epoch, sgd one per demonstration
    # fits: gd 1, sgd 4 + 1 measurements of 2 x (1 + 10) tokens; every run scores 2 dev + 6 test x (1 + 5)
    assert job.scored == 2 * (1 * 22 + 48) + 2 * (5 * 22 + 48)


def test_order_kernel_curves_dai_tokens_by_hand(tiny):
    config, run = tiny
    order = one(cost.order_jobs(run, config, LENGTHS), "smollm2-135m", "agnews")
    # ICL: 2 orderings x (41 + 2 x 8); checkpoints {2, 3}: 2 optimizers x 2 orderings x 2 x 2 queries x 9
    assert order.scored == 2 * 57 + 2 * 2 * 2 * 18
    assert order.trained == {"v_deep/gd": 240, "v_deep/sgd": 240} and order.steps == {"v_deep/gd": 6, "v_deep/sgd": 12}
    kernel = one(cost.kernel_jobs(run, config, LENGTHS), "smollm2-135m", "sst2")
    # 7 queries, 2 sets: capture 2 x 21 + 7 x 5 = 77; zero-shot 7 x 6 + 2 x 2 x 11; probes 2 x 21;
    # kNN on 7 - round(4.9) = 2 held-out queries x 26; symbols: a second capture
    assert kernel.scored == 77 + 42 + 44 + 42 + 52 + 77
    curves = one(cost.labels_jobs(run, config, LENGTHS), "smollm2-135m", "sst2")
    assert curves.scored == 2 * 3 * (1 + 3 * 10)  # default, flipped, words A/B (A/B/C: 3 classes, skipped)
    dai = cost.dai_jobs(run, config, LENGTHS)
    assert [(j.model, j.dataset) for j in dai] == [("smollm2-135m", "sst2"), ("smollm2-135m-untrained", "sst2")]
    # 6 queries: zero-shot 36; k = 2: ICL 21 + 30, final loss 2 x 11, FT capture 36
    assert dai[0].scored == 36 + 51 + 22 + 36 and dai[0].trained == {"kv/sgd": 20} and dai[0].steps == {"kv/sgd": 2}


def test_flop_model_by_hand():
    shape = cost.Shape(params=100, nonembed=80, layers=4, hidden=2, kv_dim=2)
    costs = cost.flop_costs(shape, peak=1000, utilisation=0.5, bandwidth=10)
    assert costs.score_s == pytest.approx(160 / 500)
    assert costs.train_s["all/gd"] == pytest.approx((2 * 80 * 2 + 2 * 80) / 500)  # 6N
    assert costs.train_s["kv/sgd"] == pytest.approx((2 * 80 * 2 + 2 * 32) / 500)  # k + v of 4 layers: 32
    assert costs.train_s["v_mid/adam"] == pytest.approx((2 * 80 * 1.5 + 2 * 4) / 500)  # backward: upper half
    assert costs.train_s["v_deep/gd"] == pytest.approx((2 * 80 * 1.25 + 2 * 4) / 500)  # backward: last layer
    assert costs.step_s["all/adam"] == pytest.approx((100 * 36 + 2 * 80 * 2) / 10)
    assert costs.step_s["v_deep/sgd"] == pytest.approx((4 * 20 + 2 * 80 * 1.25) / 10)
    llama = cost.SHAPES["llama-7b"]
    assert llama.train_flops("all") == 6 * llama.nonembed and llama.trained("v_deep") == 4096 * 4096
    job = cost.Job("x", "m", "d", scored=10, trained={"v_deep/sgd": 5}, steps={"v_deep/sgd": 2})
    assert costs.seconds(job) == pytest.approx(10 * 0.32 + 5 * 208 / 500 + 2 * 28)


def test_wall_time():
    hours = [3600.0, 7200.0, 3600.0]
    assert cost.wall_hours(hours, 1) == 4
    assert cost.wall_hours(hours, 2) == 2  # 4 h / 2 = the longest job
    assert cost.wall_hours(hours, 16) == 2  # never below the longest job
    jobs = [cost.Job("a", "m", "d", scored=s) for s in (1, 2, 1)]
    flat = cost.Costs("test", "cpu", 3600.0, {}, {})
    summary = cost.summarise(jobs, jobs, lambda model: flat, [1, 4])
    assert summary["total"]["gpu_h"] == 4 and summary["wall_h"] == {1: [4, 4], 4: [2, 2]}
    assert "| **total** |  | 3 |" in cost.markdown(summary, ["note"])


def test_load_costs_scales_and_falls_back(tmp_path):
    path = tmp_path / "costs.json"
    path.write_text(json.dumps({"device": "H100", "model": "llama-7b", "score_s_per_token": 2e-5,
                                "train_s_per_token": {"all/adam": 1e-3}, "peak_gpu_gb": 61.0}))
    llama = cost.SHAPES["llama-7b"]
    fallback = cost.flop_costs(llama)
    same = cost.load_costs(path, llama, fallback)
    assert same.score_s == 2e-5 and same.train_s["all/adam"] == 1e-3 and same.peak_gpu_gb == 61.0
    assert "all/adam" not in same.step_s and same.step_s["kv/sgd"] == fallback.step_s["kv/sgd"]  # measured: steps in
    assert same.train_s["kv/sgd"] == fallback.train_s["kv/sgd"] and "FLOP model for" in same.source
    small = cost.load_costs(path, cost.SHAPES["smollm2-135m"], fallback)
    assert small.score_s == pytest.approx(2e-5 * 106_203_456 / llama.nonembed)


def test_measured_epochs(tmp_path):
    assert cost.measured_epochs(tmp_path, 200) is None
    where = tmp_path / "results" / "finetune" / "m"
    where.mkdir(parents=True)
    pd.DataFrame({"optimizer": ["gd", "gd", "sgd"], "subset": ["all"] * 3, "epochs": [4, 25, 6],
                  "status": ["converged", "not_converged", "diverged"]}).to_csv(where / "sst2.runs.csv", index=False)
    epochs = cost.measured_epochs(tmp_path, 200)
    assert epochs.per_run("gd", "all") == (4 + 200) / 2  # capped runs would train on to the paper's cap
    assert epochs.per_run("sgd", "all") == 6 and epochs.per_run("adam", "kv") == pytest.approx(210 / 3)


def test_paper_finetune_runs_are_the_grid(tmp_path):
    config = load_config(REPO, REPO / "config" / "paper.yaml", {"data": {"mirror_dir": str(tmp_path)}})
    run = resolve(config, REPO)
    ft, icl = config["finetune"], config["icl"]
    controls = [(m, d) for m, d in run.pairs["finetune"] if m in run.control.models]
    assert {d for _, d in controls} == set(config["control"]["datasets"]) == {"sst2", "agnews", "cb", "rte"}
    pairs = len(config["use_models"]) * len(config["datasets"]) + len(run.control.models) * len(controls) // 3
    assert len(run.pairs["finetune"]) == pairs == 3 * 12 + 3 * 4
    lengths = {d: token_lengths.TokenLengths(10, 5, 1, 100) for d in run.datasets}
    jobs = cost.finetune_jobs(run, config, lengths, cost.Epochs(lambda o, s: 1))
    grid = (len(icl["demo_seeds"]) * len([k for k in icl["n_demos"] if k >= 1]) * len(ft["optimizers"])
            * len(ft["subsets"]) * len(ft["lrs"]))
    assert grid == 5 * 4 * 3 * 4 * 4 == 960
    # finetune.skip: Adam on all of LLaMa-7B and of its untrained copy (12 + 4 pairs) cannot fit 80 GB
    skipped = sum(1 for m, _ in run.pairs["finetune"] for s in ft["skip"] if s["model"] == m) * grid // (3 * 4)
    assert skipped == 16 * 80
    assert sum(j.runs for j in jobs) == pairs * grid - skipped == 44_800

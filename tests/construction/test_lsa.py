"""Training an LSA layer (iclgd.construction.lsa): it moves towards one-step GD at the best learning rate,
deterministically, and its tables follow the config (the construction itself: test_lsa_construction.py)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from iclgd.construction.lsa import (
    best_gd_lr,
    lsa_study,
    order_sensitivity_lsa,
    plot_lsa_convergence,
    sample_tasks,
    train_lsa,
)
from iclgd.construction.lsa_construction import (
    constructed_weights,
    gd_step_prediction,
)

F64 = torch.float64


def test_order_sensitivity_table():
    weights = constructed_weights(4, 1, 1.0, 8)
    df = order_sensitivity_lsa({"constructed": weights}, d=4, n_ctx=8, n_tasks=16, n_perms=5, seed=0)
    assert len(df) == 16 and set(df.layer) == {"constructed"}
    assert df["max_abs_diff"].max() <= 1e-12 and (df["mean_abs_pred"] > 0).all()


def test_best_gd_lr_beats_neighbours():
    tasks = sample_tasks(2048, 5, 10, torch.Generator().manual_seed(0), F64)
    lr = best_gd_lr(tasks)

    def loss(eta: float) -> float:
        pred = gd_step_prediction(tasks.x_ctx, tasks.y_ctx, tasks.x_q, eta)
        return float(((pred - tasks.y_q) ** 2).mean())

    assert lr > 0
    assert all(loss(lr) <= loss(lr * f) for f in (0.5, 0.9, 0.99, 1.01, 1.1, 2.0))


@pytest.fixture(scope="module")
def small(default_config) -> dict:
    """The default construction.lsa block, small enough to train in seconds."""
    return default_config["construction"]["lsa"] | {
        "d": 4, "n_demos": 8, "steps": 400, "batch_size": 256, "eval_every": 100, "n_eval": 512,
        "n_lr_search": 2048, "adam_lr": 3e-3, "seed": 7, "order_tasks": 16, "order_perms": 3,
    }


def test_train_lsa_deterministic_and_moves_towards_gd(tmp_path, small):
    first, second = train_lsa(small), train_lsa(small)
    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == ["step", "metric", "value"]
    dist = first[first.metric == "pred_l2"].set_index("step")["value"]
    assert dist.index.min() == 0 and dist.index.max() == small["steps"]
    assert dist.iloc[-1] < 0.5 * dist.iloc[0]
    cos = first[first.metric == "sens_cosine"].set_index("step")["value"]
    assert cos.iloc[-1] > cos.iloc[0]
    out = plot_lsa_convergence(first, tmp_path / "conv.pdf")
    assert out.stat().st_size > 0


def test_different_seed_changes_run(small):
    other = train_lsa({**small, "steps": 10, "eval_every": 10, "seed": 8})
    base = train_lsa({**small, "steps": 10, "eval_every": 10})
    assert not other["value"].equals(base["value"])


def test_lsa_study_tables_follow_the_config(small):
    """The study's tables record the block it ran (config.csv) and measure sparsity at the thresholds given."""
    tables, headline = lsa_study({**small, "steps": 10, "eval_every": 10}, [1e-2, 1e-5])
    assert tables["config"].iloc[0].to_dict() == {**small, "steps": 10, "eval_every": 10}
    assert sorted(set(tables["weight_sparsity"]["threshold"])) == [1e-5, 1e-2]
    order = tables["order_sensitivity"]
    assert len(order) == 2 * small["order_tasks"]  # constructed and trained layer
    assert headline["order_maxdiff_constructed"] <= 1e-12  # the construction ignores the order exactly

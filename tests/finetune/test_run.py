"""The fine-tuning grid on the tiny Llama (`iclgd.finetune.run`): lr = 0 is inert, base weights are restored,
only converged runs are scored, the dev split and the lr rule. Core training: tests/core/test_training.py."""

from __future__ import annotations

import dataclasses
import numpy as np
import pandas as pd
import pytest
import torch

from iclgd.core import forward, training
from iclgd.finetune import run as finetune

# toy, prompt_set, model and one_thread: tests/conftest.py
pytestmark = pytest.mark.usefixtures("one_thread")
OPTIMIZERS = ("gd", "sgd", "adam")
#: runtime.batch_size / batch_tokens for the tiny model: small batches exercise the packing.
BATCHING = {"batch_size": 2, "batch_tokens": 1024}


def grid(default_config, **overrides) -> finetune.GridConfig:
    """The default config's grid with test-sized overrides."""
    return finetune.GridConfig.from_dict(default_config["finetune"] | overrides)


def examples(tok, ps):
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    return training.encode_examples(tok, training.demo_queries(ps), ps["classes"], label_ids)


def state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def fit(model, tok, ps, optimizer, subset="all", lr=0.05, epochs=1, **kwargs) -> training.TrainResult:
    params = training.freeze_except(model, training.select_parameters(model, subset))
    return training.train(model, examples(tok, ps), optimizer, lr, epochs, params, **kwargs)


def test_lr_zero_reproduces_zero_shot_scores(model, tiny, prompt_set):
    tok = tiny[1]
    zero_shot = forward.score_prompt_set(model, tok, {**prompt_set, "prefix": ""}, **BATCHING)
    label_ids = forward.label_token_ids(tok, prompt_set["label_words"])
    for optimizer in OPTIMIZERS:
        fit(model, tok, prompt_set, optimizer, lr=0.0, epochs=2)
        got = finetune.evaluate(model, tok, prompt_set, prompt_set["queries"], label_ids, {}, **BATCHING)
        np.testing.assert_array_equal(np.stack(got["label_logprobs"]), np.stack(zero_shot["label_logprobs"]))
        np.testing.assert_array_equal(np.stack(got["top10_ids"]), np.stack(zero_shot["top10_ids"]))


def test_grid_restores_base_weights_and_scores_only_converged_runs(model, tiny, toy, prompt_set, default_config):
    tok = tiny[1]
    before = state(model)
    zero = {**prompt_set, "k": 0, "seed": 0, "demos": [], "prefix": ""}
    cfg = grid(default_config, optimizers=["gd", "adam"], subsets=["all", "v_deep"], lrs=[1e-3, 0.05, 50.0],
               max_epochs=40, target_loss=0.1)
    used = [d["uid"] for d in prompt_set["demos"]] + [q["uid"] for q in prompt_set["queries"]]
    dev = finetune.dev_examples(toy.train, toy.template, used, size=6, seed=0, dataset="toy")
    result = finetune.run_grid(model, tok, [zero, prompt_set], cfg, dev, tags={"model": "tiny"}, progress=False,
                               **BATCHING)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    runs = result.runs
    assert list(runs.columns) == finetune.RUN_COLUMNS and len(runs) == 2 * 2 * 3  # the k = 0 set is skipped
    assert set(runs["status"]) <= set(training.STATUSES) and set(runs["k"]) == {4}
    assert (runs.loc[(runs["lr"] == 50.0) & (runs["subset"] == "all"), "status"] == "diverged").all()
    converged = runs[runs["status"] == "converged"]
    assert len(converged) and len(converged) < len(runs)
    assert (converged["final_loss"] < 0.1).all() and converged["learned"].all()
    key = ["optimizer", "subset", "lr"]
    scored = lambda frame: set(map(tuple, frame[key].drop_duplicates().to_numpy()))  # noqa: E731
    assert scored(result.dev_records) == scored(converged)  # every converged run is scored on dev
    assert scored(result.records) == scored(converged[converged["test_scored"]])
    records = result.records
    assert list(records.columns) == forward.RECORD_COLUMNS and set(records["model"]) == {"tiny"}
    epochs = records.merge(converged, on=key)
    assert (epochs["epoch"] == epochs["epochs"]).all()  # records carry the epoch the run stopped at
    scores = finetune.dev_scores(result.dev_records)
    chosen = finetune.select_lr(scores)
    assert set(chosen["lr"]) <= set(converged["lr"])  # only converged runs compete
    assert scored(chosen) <= scored(records)  # the selected run has test records
    # a converged run is scored on test exactly when its dev loss beats every smaller converged rate's
    ranked = converged.merge(scores, on=[*finetune.SELECT_BY, "lr"]).sort_values("lr")
    for _, group in ranked.groupby(["optimizer", "subset"]):
        earlier = group["loss"].cummin().shift(fill_value=np.inf)
        assert (group["test_scored"] == (group["loss"] < earlier)).all()
    table = finetune.convergence(runs, chosen)
    assert table["n_lrs"].eq(3).all() and (table["converged"] == (table["n_converged"] > 0)).all()
    assert table.loc[table["converged"], "epochs"].notna().all()


def test_convergence_table_on_constructed_runs():
    base = {"model": "m", "dataset": "d", "k": 4, "optimizer": "gd", "subset": "all", "seed": 0, "order": 0}
    runs = pd.DataFrame([
        base | {"lr": 1e-4, "status": "not_converged", "epochs": 20, "final_loss": 1.5},
        base | {"lr": 1e-3, "status": "converged", "epochs": 6, "final_loss": 0.08},
        base | {"lr": 1e-2, "status": "diverged", "epochs": 2, "final_loss": 30.0},
        base | {"k": 8, "lr": 1e-3, "status": "not_converged", "epochs": 20, "final_loss": 0.9},
    ])
    chosen = pd.DataFrame([{k: base[k] for k in finetune.SELECT_BY} | {"lr": 1e-3}])
    table = finetune.convergence(runs, chosen).set_index("k")
    assert table.loc[4, ["n_converged", "n_diverged", "n_not_converged", "n_lrs"]].tolist() == [1, 1, 1, 3]
    assert table.loc[4, "converged"] and table.loc[4, "lr"] == 1e-3 and table.loc[4, "epochs"] == 6
    assert not table.loc[8, "converged"] and np.isnan(table.loc[8, "lr"])


@pytest.mark.parametrize("size", [10, 7])
def test_dev_split_is_class_balanced_and_of_the_requested_size(toy, prompt_set, size):
    used = [d["uid"] for d in prompt_set["demos"]]
    for seed in range(5):
        dev = finetune.dev_examples(toy.train, toy.template, used, size=size, seed=seed, dataset="toy")
        per_class = pd.Series([d["label"] for d in dev]).value_counts()
        assert len(dev) == size and len({d["uid"] for d in dev}) == size
        assert set(per_class.index) == {"negative", "positive"} and per_class.max() - per_class.min() <= 1
        assert [d["uid"] for d in dev] == sorted(d["uid"] for d in dev)
    negatives = toy.train[toy.train["label"] == "negative"]["uid"].tolist()  # leave 2 negatives in the pool
    with pytest.raises(training.FinetuneError, match="class-balanced"):
        finetune.dev_examples(toy.train, toy.template, used + negatives[2:], size=10, seed=0, dataset="toy")


def test_dev_split_avoids_demonstrations_and_test_queries(model, tiny, toy, prompt_set, default_config):
    used = [d["uid"] for d in prompt_set["demos"]] + [q["uid"] for q in prompt_set["queries"]]
    dev = finetune.dev_examples(toy.train, toy.template, used, size=10, seed=0, dataset="toy")
    assert len(dev) == 10 and not {d["uid"] for d in dev} & set(used)
    assert dev == finetune.dev_examples(toy.train, toy.template, used, size=10, seed=0, dataset="toy")
    assert dev != finetune.dev_examples(toy.train, toy.template, used, size=10, seed=1, dataset="toy")  # seeded
    with pytest.raises(training.FinetuneError, match="exceeds"):
        finetune.dev_examples(toy.train, toy.template, used, size=len(toy.train), seed=0)
    cfg = grid(default_config, optimizers=["gd"], subsets=["all"], lrs=[0.05], max_epochs=100, target_loss=0.1)
    leaky = dev + training.demo_queries(prompt_set)[:1]
    with pytest.raises(training.FinetuneError, match="overlap"):
        finetune.run_grid(model, tiny[1], [prompt_set], cfg, dev=leaky, progress=False, **BATCHING)
    result = finetune.run_grid(model, tiny[1], [prompt_set], cfg, dev=dev, tags={"model": "tiny"}, progress=False,
                               **BATCHING)
    assert set(result.dev_records["uid"]) == {d["uid"] for d in dev}
    assert not set(result.dev_records["uid"]) & set(used)
    table = finetune.dev_scores(result.dev_records)
    assert table["n_dev"].tolist() == [10]


def test_select_lr_by_dev_accuracy_ties_to_smaller_lr():
    rows = []
    accuracy = {  # (subset, lr) -> dev accuracy of the twins of seed 0 and seed 1
        ("all", 1e-4): (0.50, 0.70), ("all", 1e-3): (0.80, 0.60), ("all", 1e-2): (0.90, 0.20),
        ("kv", 1e-4): (0.60, 0.60), ("kv", 1e-3): (0.70, 0.50), ("kv", 1e-2): (0.40, 0.60),
    }
    for (subset, lr), accs in accuracy.items():
        for seed, acc in enumerate(accs):
            rows.append({"model": "m", "dataset": "d", "k": 4, "optimizer": "gd", "subset": subset,
                         "seed": seed, "order": 0, "lr": lr, "accuracy": acc})
    by_accuracy = {"metric": "accuracy", "higher_is_better": True}
    chosen = finetune.select_lr(pd.DataFrame(rows), **by_accuracy).set_index(["subset", "seed"])["lr"]
    assert chosen.to_dict() == {("all", 0): 1e-2, ("all", 1): 1e-4, ("kv", 0): 1e-3, ("kv", 1): 1e-4}  # kv/1: tie
    pooled = finetune.select_lr(pd.DataFrame(rows), by=["subset"], **by_accuracy).set_index("subset")  # seed means
    assert pooled.loc["all", "lr"] == 1e-3 and pooled.loc["all", "dev_accuracy"] == pytest.approx(0.7)
    assert pooled.loc["kv", "lr"] == 1e-4 and (pooled["n_lrs"] == 3).all()


def test_select_lr_takes_the_lowest_dev_loss_whatever_the_accuracy():
    """Dev accuracy ties (all) or disagrees (kv): the lower mean dev label loss wins; equal losses go to the
    smaller lr; the chosen run's dev accuracy is reported beside its loss."""
    scores = {  # (subset, lr) -> (dev loss, dev accuracy)
        ("all", 1e-4): (0.40, 1.0), ("all", 1e-3): (0.15, 1.0), ("all", 1e-2): (0.30, 1.0),
        ("kv", 1e-4): (0.50, 1.0), ("kv", 1e-3): (0.20, 0.75), ("kv", 1e-2): (0.20, 0.5),
    }
    rows = [{"model": "m", "dataset": "d", "k": 4, "optimizer": "gd", "subset": subset, "seed": 0, "order": 0,
             "lr": lr, "loss": loss, "accuracy": acc, "full_accuracy": acc}
            for (subset, lr), (loss, acc) in scores.items()]
    chosen = finetune.select_lr(pd.DataFrame(rows)).set_index("subset")
    assert chosen["lr"].to_dict() == {"all": 1e-3, "kv": 1e-3}
    assert chosen.loc["kv", "dev_loss"] == 0.20 and chosen.loc["kv", "dev_accuracy"] == 0.75


def test_dev_scores_loss_is_the_gold_label_cross_entropy():
    base = {"model": "m", "dataset": "d", "k": 4, "optimizer": "gd", "subset": "all", "epoch": 1, "seed": 0,
            "order": 0, "lr": 0.1}
    records = pd.DataFrame({**{c: [v, v] for c, v in base.items()}, "uid": [1, 2], "pred_index": [1, 0],
                            "label_index": [1, 1], "full_correct": [True, False],
                            "label_logprobs": [np.array([-3.0, -0.1]), np.array([-0.5, -1.5])]})
    table = finetune.dev_scores(records)
    assert table["loss"].tolist() == pytest.approx([0.8]) and table["accuracy"].tolist() == [0.5]


def test_dev_accuracy_counts_non_finite_scores_as_wrong():
    records = pd.DataFrame(
        {
            **{c: [v, v] for c, v in {"model": "m", "dataset": "d", "k": 4, "optimizer": "gd", "subset": "all",
                                       "epoch": 1, "seed": 0, "order": 0, "lr": 0.1}.items()},
            "uid": [1, 2], "pred_index": [0, 0], "label_index": [0, 0], "full_correct": [True, True],
            "label_logprobs": [np.array([-0.1, -2.0]), np.array([np.nan, np.nan])],
        }
    )
    table = finetune.dev_scores(records)
    assert table["accuracy"].tolist() == [0.5] and table["full_accuracy"].tolist() == [0.5]
    assert table["loss"].tolist() == [np.inf]  # a non-finite score is the worst loss


def test_grid_config_reads_the_validated_block(default_config):
    """The grid takes its settings from the config block (pipeline keys ignored) and stores numbers as the
    runs table shows them: a rate YAML reads as the int 1 is the float 1.0."""
    block = default_config["finetune"]
    cfg = finetune.GridConfig.from_dict(block)
    assert cfg.lrs == tuple(float(lr) for lr in block["lrs"]) and cfg.max_epochs == block["max_epochs"]
    assert cfg.optimizers == tuple(block["optimizers"]) and cfg.batch_tokens == block["batch_tokens"]
    assert (cfg.blowup, cfg.diverge_patience, cfg.dev_size) == (3.0, 3, 32)  # the schema's defaults
    coerced = finetune.GridConfig.from_dict(block | {"lrs": [1, 0.5], "target_loss": 1, "blowup": 4})
    assert coerced.lrs == (1.0, 0.5) and all(type(lr) is float for lr in coerced.lrs)
    assert type(coerced.target_loss) is float and type(coerced.blowup) is float
    with pytest.raises(KeyError, match="dev_size"):  # no second set of defaults behind the schema's
        finetune.GridConfig.from_dict({k: v for k, v in block.items() if k != "dev_size"})


def test_peak_memory_is_this_process_peak_rss():
    """ru_maxrss is KiB on Linux: the MiB reported must match the kernel's VmHWM (also KiB)."""
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    out = finetune.peak_memory("cpu")
    assert out["peak_rss_mb"] == pytest.approx(int(status["VmHWM"].split()[0]) / 1024, rel=0.05)
    assert "cuda_max_allocated_mb" not in out  # a CPU job reports no GPU memory, even on a GPU machine


def test_grid_leaves_out_the_skipped_runs(model, tiny, prompt_set, default_config):
    """finetune.skip (a setting that cannot fit the device) drops exactly its (optimizer, subset) runs."""
    cfg = grid(default_config, optimizers=["gd", "adam"], subsets=["v_deep"], lrs=[1e-3], max_epochs=1)
    assert finetune.GridConfig.from_dict(dataclasses.asdict(cfg) | {"skip": [["adam", "v_deep"]]}).skip == (
        ("adam", "v_deep"),)
    skipped = dataclasses.replace(cfg, skip=(("adam", "v_deep"),))
    runs = finetune.run_grid(model, tiny[1], [prompt_set], skipped, None, progress=False, **BATCHING).runs
    assert list(runs["optimizer"]) == ["gd"]

"""Per-demonstration fine-tuning on the tiny Llama: exactness, order (in)variance, freezing, restore, lr rule."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from iclgd import finetune, models, prompts, scoring

TEMPLATE = "Review: {text}\nSentiment:"
SPEC = {
    "template": TEMPLATE,
    "verbalizer": {"negative": "negative", "positive": "positive"},
    "classes": ["negative", "positive"],
}
OPTIMIZERS = ("gd", "sgd", "adam")
WORDS = ["dull", "great", "flat", "lovely", "tedious", "superb", "boring", "moving", "weak", "sharp"]


def frame(uids, offset: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": uids,
            "label": ["positive" if i % 2 else "negative" for i in range(len(uids))],
            "text": [f"a {WORDS[(i + offset) % len(WORDS)]} film, take {i}" for i in range(len(uids))],
        }
    )


TRAIN = frame(list(range(100, 130)), 0)
TEST = frame(list(range(900, 906)), 3)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model(tiny):
    """A private copy: training must not leak into the session-wide tiny model other tests use."""
    return copy.deepcopy(tiny[0])


@pytest.fixture(scope="module")
def prompt_set():
    (ps,) = prompts.build_prompt_sets("toy", SPEC, TRAIN, TEST, [4], [0])
    return ps


def reordered(ps: dict) -> dict:
    demos = ps["demos"][::-1]
    return {**ps, "order": 1, "demos": demos, "prefix": "".join(d["text"] + "\n\n" for d in demos)}


def examples(tok, ps):
    label_ids = scoring.label_token_ids(tok, ps["label_words"])
    return finetune.encode_examples(tok, finetune.demo_queries(ps), ps["classes"], label_ids)


def state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def fit(model, tok, ps, optimizer, subset="all", lr=0.05, epochs=1, **kwargs) -> finetune.TrainResult:
    params = finetune.freeze_except(model, finetune.select_parameters(model, subset))
    return finetune.train(model, examples(tok, ps), optimizer, lr, epochs, params, **kwargs)


def test_micro_batches_pack_by_length_under_the_budgets():
    lengths = [9, 3, 5, 3, 12]
    batch = [finetune.Example(uid=i, ids=tuple(range(n)), target=0) for i, n in enumerate(lengths)]
    # Sorted lengths 3, 3, 5, 9, 12; rows * longest <= 16: [3, 3, 5] (15), [9] (18 > 16 with two), [12].
    groups = finetune.micro_batches(batch, micro_batch=0, batch_tokens=16)
    assert [[ex.uid for ex in g] for g in groups] == [[1, 3, 2], [0], [4]]
    # A row cap of 2 splits the first group; an ample budget keeps everything in length order.
    assert [len(g) for g in finetune.micro_batches(batch, 2, 1024)] == [2, 2, 1]
    assert [ex.uid for ex in finetune.micro_batches(batch, 0, 1024)[0]] == [1, 3, 2, 0, 4]


def test_micro_batching_keeps_the_mean_loss_gradient(model, tiny, prompt_set):
    """Packing changes only how the mean-loss gradient is summed, not its value (to rounding)."""
    tok = tiny[1]
    batch = finetune.canonical(examples(tok, prompt_set))
    finetune.freeze_except(model, finetune.select_parameters(model, "all"))
    grads = []
    for tokens in (1024, 30):
        model.zero_grad(set_to_none=True)
        finetune._backward(model, batch, 0, tokens)
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert len(finetune.micro_batches(batch, 0, 30)) > 1
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_demo_queries_are_the_zero_shot_prompts(prompt_set):
    rows = TRAIN.set_index("uid")
    for demo, query in zip(prompt_set["demos"], finetune.demo_queries(prompt_set)):
        assert query["query"] == prompts.render_query(TEMPLATE, rows.loc[demo["uid"]].to_dict())
        assert demo["text"] == query["query"] + " " + demo["label"]


def test_examples_encode_like_zero_shot_scoring(tiny, prompt_set):
    _, tok = tiny
    (ex, *_) = examples(tok, prompt_set)
    query = finetune.demo_queries(prompt_set)[0]["query"]
    assert list(ex.ids) == scoring.encode_prefix(tok, "") + scoring.encode_query(tok, query)
    label = prompt_set["demos"][0]["label"]
    assert ex.target == tok(" " + label, add_special_tokens=False).input_ids[0]


def test_subsets_select_intended_parameters(tiny):
    deep = models.tiny_llama(tiny[1], seed=0, layers=4)
    pick = lambda subset: set(finetune.select_parameters(deep, subset))  # noqa: E731
    attn = "model.layers.{}.self_attn.{}_proj.weight"
    assert pick("kv") == {attn.format(i, p) for i in range(4) for p in "kv"}
    assert pick("v_mid") == {attn.format(2, "v")}
    assert pick("v_deep") == {attn.format(3, "v")}
    everything = pick("all")
    assert everything == {n for n, _ in deep.named_parameters()}
    assert "model.embed_tokens.weight" in everything and "lm_head.weight" not in everything  # tied, listed once
    with pytest.raises(finetune.FinetuneError):
        finetune.select_parameters(deep, "q_only")


def test_lr_zero_reproduces_zero_shot_scores(model, tiny, prompt_set):
    tok = tiny[1]
    grid = finetune.GridConfig(optimizers=OPTIMIZERS, subsets=("all",), lrs=(0.0,), epochs=2, eval_epochs=(1,))
    result = finetune.run_grid(model, tok, [prompt_set], grid, progress=False)
    zero_shot = scoring.score_prompt_set(model, tok, {**prompt_set, "prefix": ""})
    assert len(result.records) == 3 * 2 * len(TEST)
    for _, group in result.records.groupby(["optimizer", "epoch"]):
        np.testing.assert_array_equal(np.stack(group["label_logprobs"]), np.stack(zero_shot["label_logprobs"]))
        np.testing.assert_array_equal(np.stack(group["top10_ids"]), np.stack(zero_shot["top10_ids"]))


def test_one_gd_step_lowers_the_label_loss(model, tiny, prompt_set):
    tok = tiny[1]
    batch = finetune.canonical(examples(tok, prompt_set))
    with torch.no_grad():
        before = finetune.label_loss(model, batch).item()
    result = fit(model, tok, prompt_set, "gd", lr=0.05)
    with torch.no_grad():
        after = finetune.label_loss(model, batch).item()
    assert result.losses == [pytest.approx(before, rel=1e-5)]
    assert after < before


@pytest.mark.parametrize("micro_batch,batch_tokens", [(0, 1024), (3, 1024), (0, 30)])
def test_full_batch_gd_is_bitwise_order_invariant(model, tiny, prompt_set, micro_batch, batch_tokens):
    tok = tiny[1]
    base = finetune.snapshot(model, [n for n, _ in model.named_parameters()])
    budget = {"micro_batch": micro_batch, "batch_tokens": batch_tokens}
    fit(model, tok, prompt_set, "gd", epochs=2, **budget)
    first = state(model)
    finetune.restore(model, base)
    fit(model, tok, reordered(prompt_set), "gd", epochs=2, **budget)
    second = state(model)
    assert any(not torch.equal(first[n], base[n]) for n in base)  # it did train
    assert all(torch.equal(first[n], second[n]) for n in first)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_per_demo_optimisers_depend_on_order(model, tiny, prompt_set, optimizer):
    tok = tiny[1]
    base = finetune.snapshot(model, [n for n, _ in model.named_parameters()])
    fit(model, tok, prompt_set, optimizer, lr=0.05)
    first = state(model)
    finetune.restore(model, base)
    fit(model, tok, reordered(prompt_set), optimizer, lr=0.05)
    assert any(not torch.equal(first[n], p) for n, p in model.named_parameters())


def test_frozen_parameters_stay_put_without_grads_or_state(model, tiny, prompt_set):
    tok = tiny[1]
    before = state(model)
    trained = set(finetune.select_parameters(model, "kv"))
    result = fit(model, tok, prompt_set, "adam", subset="kv", lr=0.01)
    params = dict(model.named_parameters())
    for name, param in params.items():
        assert param.grad is None
        if name in trained:
            assert param.requires_grad and not torch.equal(param, before[name])
        else:
            assert not param.requires_grad and torch.equal(param, before[name])
    with_state = {id(p) for p in result.optimizer.state}
    assert with_state == {id(params[n]) for n in trained}


def test_tied_embeddings_train_together_under_all(model, tiny, prompt_set):
    embed = model.model.embed_tokens.weight
    assert model.lm_head.weight is embed
    before = embed.detach().clone()
    fit(model, tiny[1], prompt_set, "sgd", subset="all", lr=0.05)
    assert model.lm_head.weight is embed and not torch.equal(embed, before)


def test_grid_restores_base_weights_and_tags_records(model, tiny, prompt_set):
    tok = tiny[1]
    before = state(model)
    zero = {**prompt_set, "k": 0, "seed": 0, "demos": [], "prefix": ""}
    grid = finetune.GridConfig(
        optimizers=("gd", "adam"), subsets=("all", "v_deep"), lrs=(0.01, 0.1), epochs=3, eval_epochs=(1, 9)
    )
    result = finetune.run_grid(model, tok, [zero, prompt_set], grid, tags={"model": "tiny"}, progress=False)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    records = result.records
    assert list(records.columns) == scoring.RECORD_COLUMNS
    assert len(records) == 2 * 2 * 2 * 2 * len(TEST)  # optimizers x subsets x lrs x checkpoints {1, 3}
    assert set(records["method"]) == {"finetune"} and set(records["model"]) == {"tiny"}
    assert set(records["optimizer"]) == {"gd", "adam"} and set(records["subset"]) == {"all", "v_deep"}
    assert set(records["lr"]) == {0.01, 0.1} and set(records["epoch"]) == {1, 3}
    assert set(records["k"]) == {4}  # the k = 0 set has nothing to train on and is skipped
    assert len(result.runs) == 8 and (result.runs["seconds"] > 0).all()
    assert result.dev_records.empty


def test_dev_split_avoids_demonstrations_and_test_queries(model, tiny, prompt_set):
    used = [d["uid"] for d in prompt_set["demos"]] + [q["uid"] for q in prompt_set["queries"]]
    dev = finetune.dev_examples(TRAIN, TEMPLATE, used, size=10, seed=0, dataset="toy")
    assert len(dev) == 10 and not {d["uid"] for d in dev} & set(used)
    assert dev == finetune.dev_examples(TRAIN, TEMPLATE, used, size=10, seed=0, dataset="toy")
    with pytest.raises(finetune.FinetuneError, match="exceeds"):
        finetune.dev_examples(TRAIN, TEMPLATE, used, size=len(TRAIN), seed=0)
    grid = finetune.GridConfig(optimizers=("gd",), subsets=("v_deep",), lrs=(0.01,), epochs=1, eval_epochs=())
    leaky = dev + finetune.demo_queries(prompt_set)[:1]
    with pytest.raises(finetune.FinetuneError, match="overlap"):
        finetune.run_grid(model, tiny[1], [prompt_set], grid, dev=leaky, progress=False)
    result = finetune.run_grid(model, tiny[1], [prompt_set], grid, dev=dev, tags={"model": "tiny"}, progress=False)
    assert set(result.dev_records["uid"]) == {d["uid"] for d in dev}
    assert not set(result.dev_records["uid"]) & set(used)
    table = finetune.dev_accuracy(result.dev_records)
    assert table["n_dev"].tolist() == [10]


def test_select_lr_by_mean_dev_accuracy_ties_to_smaller_lr():
    rows = []
    accuracy = {  # (subset, lr) -> accuracy for seed 0 and seed 1
        ("all", 1e-4): (0.50, 0.70), ("all", 1e-3): (0.80, 0.60), ("all", 1e-2): (0.90, 0.20),  # 0.6, 0.7, 0.55
        ("kv", 1e-4): (0.60, 0.60), ("kv", 1e-3): (0.70, 0.50), ("kv", 1e-2): (0.40, 0.40),  # tie 0.6 -> 1e-4
    }
    for (subset, lr), accs in accuracy.items():
        for seed, acc in enumerate(accs):
            rows.append({"model": "m", "dataset": "d", "k": 4, "optimizer": "gd", "subset": subset, "epoch": 5,
                         "seed": seed, "order": 0, "lr": lr, "accuracy": acc})
    chosen = finetune.select_lr(pd.DataFrame(rows)).set_index("subset")
    assert chosen.loc["all", "lr"] == 1e-3 and chosen.loc["all", "dev_accuracy"] == pytest.approx(0.7)
    assert chosen.loc["kv", "lr"] == 1e-4
    assert (chosen["n_lrs"] == 3).all()


def test_dev_accuracy_counts_non_finite_scores_as_wrong():
    records = pd.DataFrame(
        {
            **{c: [v, v] for c, v in {"model": "m", "dataset": "d", "k": 4, "optimizer": "gd", "subset": "all",
                                       "epoch": 1, "seed": 0, "order": 0, "lr": 0.1}.items()},
            "uid": [1, 2], "pred_index": [0, 0], "label_index": [0, 0], "full_correct": [True, True],
            "label_logprobs": [np.array([-0.1, -2.0]), np.array([np.nan, np.nan])],
        }
    )
    table = finetune.dev_accuracy(records)
    assert table["accuracy"].tolist() == [0.5] and table["full_accuracy"].tolist() == [0.5]


def test_grid_config_from_dict_checks_keys_and_checkpoints():
    spec = {"optimizers": ["sgd"], "lrs": ["1e-3", 0.01], "epochs": 10, "eval_epochs": [1, 5, 50]}  # YAML: 1e-3 is a str
    grid = finetune.GridConfig.from_dict(spec)
    assert grid.optimizers == ("sgd",) and grid.lrs == (1e-3, 0.01) and grid.checkpoints() == [1, 5, 10]
    with pytest.raises(finetune.FinetuneError, match="unknown keys"):
        finetune.GridConfig.from_dict({"learning_rates": [1e-3]})
    with pytest.raises(finetune.FinetuneError, match="optimizers"):
        finetune.GridConfig.from_dict({"optimizers": ["rmsprop"]})


def test_peak_memory_reports_rss():
    assert finetune.peak_memory()["peak_rss_mb"] > 0

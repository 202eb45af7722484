"""Order sensitivity on the tiny Llama: GD exactly invariant, SGD not, lr = 0 inert; hand-computed spreads
(the spread helpers themselves: test_spread.py; the paper outputs: test_report.py)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from iclgd.core import forward, prompts
from iclgd.order import run as order

# prompt_set (k = 4), model and one_thread: tests/conftest.py
pytestmark = pytest.mark.usefixtures("one_thread")
#: runtime.batch_size / batch_tokens for the tiny model
BATCHING = {"batch_size": 2, "batch_tokens": 1024}


@pytest.fixture(scope="module")
def block(default_config) -> dict:
    """The default `order` block, sized for the tiny model and its k = 4 prompt set."""
    return default_config["order"] | {"n_demos": 4, "orderings": 3, "epochs": 2, "n_queries": 3, "subset": "all",
                                      "optimizers": ["gd", "sgd", "adam"], "lrs": {"gd": 0.05, "sgd": 0.05, "adam": 0.01}}


@pytest.fixture(scope="module")
def boot(default_config) -> dict:
    return {"n_boot": 50, "ci": default_config["metrics"]["ci"], "seed": default_config["metrics"]["seed"]}


def spreads(result: order.OrderResult, method: str, optimizer: str) -> pd.DataFrame:
    pq = result.per_query
    return pq[(pq["method"] == method) & (pq["optimizer"] == optimizer)]


# ---------------------------------------------------------------- hand-computed statistics


def test_spread_table_label_hand_case(boot):
    """Two orderings of one query: label probs (0.5, 0.5) vs (0.75, 0.25) -> sd 0.125 per class."""
    base = dict(model="m", dataset="d", k=2, seed=0, optimizer="sgd", subset="all", lr=0.1, epoch=1, uid=7)
    records = pd.DataFrame([
        base | {"method": "finetune", "order": 0, "label_logprobs": np.log([0.25, 0.25]),
                "top10_ids": np.arange(10), "top10_probs": np.r_[0.25, 0.25, np.zeros(8)]},
        base | {"method": "finetune", "order": 1, "label_logprobs": np.log([0.3, 0.1]),
                "top10_ids": np.arange(10), "top10_probs": np.r_[0.3, 0.1, np.zeros(8)]},
    ])
    point = order._Point()
    point.frames = [records.iloc[[0]], records.iloc[[1]]]
    point.vocab.update(np.array([[0.25, 0.25, 0.5]]))
    point.vocab.update(np.array([[0.3, 0.1, 0.6]]))
    per_query, _ = order._point_frame(point)
    row = per_query.iloc[0]
    assert row["label"] == pytest.approx(0.125)
    assert row["vocab_label"] == pytest.approx((0.025 + 0.075) / 2)
    assert row["top1"] == pytest.approx(0.025)
    assert row["vocab"] == pytest.approx((0.025 + 0.075 + 0.05) / 3)
    table = order.spread_table(per_query, **boot).set_index("statistic")
    assert table.loc["label", "spread"] == pytest.approx(0.125)
    assert table.loc["label", "lo"] == table.loc["label", "hi"] == pytest.approx(0.125)  # one query
    assert set(table.index) == set(order.PER_QUERY)


# ---------------------------------------------------------------- orderings and prompts


def test_orderings_distinct_identity_first_and_bounded():
    perms = order.orderings(4, 24, np.random.default_rng(0))
    assert perms[0] == (0, 1, 2, 3) and len(set(perms)) == 24
    with pytest.raises(order.OrderError):
        order.orderings(3, 7, np.random.default_rng(0))


def test_reorder_identity_is_the_stored_prompt(prompt_set):
    same = order.reorder(prompt_set, range(4), 0)
    assert same["prefix"] == prompt_set["prefix"]
    rev = order.reorder(prompt_set, [3, 2, 1, 0], 1)
    assert rev["order"] == 1 and rev["demos"] == prompt_set["demos"][::-1]
    assert sorted(rev["prefix"].split(prompts.DEMO_SEPARATOR)) == sorted(prompt_set["prefix"].split(prompts.DEMO_SEPARATOR))
    with pytest.raises(order.OrderError, match="prefix"):
        order.reorder({**prompt_set, "prefix": "tampered"}, range(4), 0)


def test_config_reads_the_block_and_checks_what_the_schema_cannot(default_config):
    block = default_config["order"]
    cfg = order.OrderConfig.from_dict(block)  # the pipeline keys (models, datasets) are not the experiment's
    assert (cfg.n_demos, cfg.demo_seed, cfg.epochs) == (block["n_demos"], block["demo_seed"], block["epochs"])
    assert cfg.lrs == {o: float(lr) for o, lr in block["lrs"].items()}
    assert all(type(lr) is float for lr in order.OrderConfig.from_dict(block | {"lrs": {"gd": 1, "sgd": 0, "adam": 1}}).lrs.values())
    with pytest.raises(order.OrderError, match="order.lrs.adam"):  # cross-key: a rate for every optimizer run
        order.OrderConfig.from_dict(block | {"optimizers": ["adam"], "lrs": {"sgd": 0.1}})
    with pytest.raises(order.OrderError, match="order.orderings"):  # only 2! = 2 orderings of 2 demonstrations
        order.OrderConfig.from_dict(block | {"n_demos": 2, "orderings": 3})
    assert order.OrderConfig.from_dict(block | {"n_demos": 2, "orderings": 2}).orderings == 2
    assert order.OrderConfig.from_dict(block | {"epochs": 7, "eval_every": 3}).checkpoints() == [3, 6, 7]


def test_full_probs_match_the_label_logprobs(tiny, prompt_set):
    model, tok = tiny
    ids = forward.label_token_ids(tok, prompt_set["label_words"])
    texts = [q["query"] for q in prompt_set["queries"]]
    out = forward.score_queries(model, tok, prompt_set["prefix"], texts, ids, batch_size=2, full=True)
    assert out["probs"].shape == (len(texts), model.config.vocab_size)
    np.testing.assert_allclose(out["probs"].sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(np.log(out["probs"][:, ids]), out["label_logprobs"], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the experiment on the tiny model


@pytest.fixture(scope="module")
def result(tiny, prompt_set, block):
    model = copy.deepcopy(tiny[0])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = order.OrderConfig.from_dict(block)
    out = order.run_order(model, tiny[1], prompt_set, cfg, tags={"model": "tiny"}, progress=False, **BATCHING)
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before), "base weights not restored"
    return out


def test_full_batch_gd_is_exactly_order_invariant(result):
    gd = spreads(result, "finetune", "gd")
    assert sorted(gd["epoch"].unique()) == [1, 2] and (gd["n_orders"] == 3).all()
    for stat in order.PER_QUERY:
        assert (gd[stat] == 0.0).all(), stat
    # ... and not because nothing moved: the second epoch changed the outputs
    rec = result.records[(result.records["optimizer"] == "gd") & (result.records["order"] == 0)]
    one, two = (np.stack(rec[rec["epoch"] == e]["label_logprobs"]) for e in (1, 2))
    assert np.abs(one - two).max() > 1e-4


def test_sgd_and_icl_are_order_sensitive(result):
    for method, opt in (("finetune", "sgd"), ("finetune", "adam"), ("icl", "none")):
        sub = spreads(result, method, opt)
        assert (sub["label"] > 0).any() and (sub["vocab"] > 0).all(), (method, opt)


def test_records_and_table_shapes(result, boot):
    # 3 orderings x 3 queries x (ICL + 3 optimizers x 2 epochs)
    assert len(result.records) == 3 * 3 * (1 + 3 * 2)
    assert set(result.records["order"]) == {0, 1, 2}
    table = order.spread_table(result.per_query, **boot)
    assert len(table) == (1 + 3 * 2) * len(order.PER_QUERY)
    assert (table["lo"] <= table["spread"] + 1e-12).all() and (table["spread"] <= table["hi"] + 1e-12).all()
    assert len(result.runs) == 3 * 3


def test_lr_zero_leaves_every_ordering_at_zero_shot(tiny, prompt_set, model, block):
    tok = tiny[1]
    cfg = order.OrderConfig.from_dict(block | {"epochs": 1, "lrs": {"gd": 0.0, "sgd": 0.0, "adam": 0.0}})
    out = order.run_order(model, tok, prompt_set, cfg, progress=False, **BATCHING)
    ft = out.per_query[out.per_query["method"] == "finetune"]
    for stat in order.PER_QUERY:
        assert (ft[stat] == 0.0).all(), stat
    ids = forward.label_token_ids(tok, prompt_set["label_words"])
    queries = order.pick_queries(prompt_set, 3, 0)
    zero = forward.score_queries(model, tok, "", [q["query"] for q in queries], ids, batch_size=2)
    rec = out.records[out.records["method"] == "finetune"]
    for _, group in rec.groupby(["optimizer", "order"]):
        np.testing.assert_array_equal(np.stack(group["label_logprobs"]), zero["label_logprobs"])

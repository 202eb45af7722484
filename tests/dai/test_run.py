"""The Dai stage: its config block, prompt-set and query selection, and fine-tuning that trains exactly the
k/v projections and restores the base weights."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch

from iclgd.core import forward, training
from iclgd.dai import similarity
from iclgd.dai.capture import DaiError, capture, capture_from
from iclgd.dai.run import DaiConfig, pick_queries, run_dai, select_prompt_sets

torch.set_num_threads(1)

#: Dai et al. train the key and value projections of every layer, nothing else.
KV = re.compile(r"\.layers\.(\d+)\.self_attn\.([kv])_proj\.")


def config(block: dict, **values) -> DaiConfig:
    return DaiConfig.from_dict({**block, **values})


def test_config_from_the_validated_block(dai_block):
    cfg = DaiConfig.from_dict(dai_block)  # models / datasets belong to the pipeline, not the stage
    assert cfg.n_demos == tuple(dai_block["n_demos"]) and cfg.demo_seeds == tuple(dai_block["demo_seeds"])
    assert cfg.lr == dai_block["lr"] and cfg.n_queries == dai_block["n_queries"]
    cast = config(dai_block, n_demos=[1, 2], demo_seeds=[], lr="1e-3", n_queries=None)  # PyYAML: '1e-3'
    assert cast.lr == 1e-3 and cast.n_demos == (1, 2) and cast.demo_seeds == () and cast.n_queries is None


def test_prompt_set_and_query_selection(dai_block, dai_prompt_sets):
    sets = dai_prompt_sets(ks=(0, 1, 3), seeds=(0, 1), n_test=6)
    chosen = select_prompt_sets(sets, config(dai_block, n_demos=[1, 3], demo_seeds=[1]))
    assert [(ps["k"], ps["seed"]) for ps in chosen] == [(1, 1), (3, 1)]
    every_seed = select_prompt_sets(sets, config(dai_block, n_demos=[3], demo_seeds=[]))
    assert [(ps["k"], ps["seed"]) for ps in every_seed] == [(3, 0), (3, 1)]
    with pytest.raises(DaiError, match="k = \\[2\\]"):
        select_prompt_sets(sets, config(dai_block, n_demos=[1, 2]))
    picked = pick_queries(chosen, 4, seed=0)
    assert picked == pick_queries(chosen, 4, seed=0) and len(picked) == 4
    uids = [q["uid"] for q in chosen[0]["queries"]]
    assert [q["uid"] for q in picked] == sorted([q["uid"] for q in picked], key=uids.index)  # file order
    assert pick_queries(chosen, None, 0) == chosen[0]["queries"]
    other = {**chosen[1], "queries": chosen[1]["queries"][::-1]}
    with pytest.raises(DaiError, match="other test queries"):
        pick_queries([chosen[0], other], 2, 0)


def test_run_shapes_restored_base_and_determinism(tiny, dai_block, dai_prompt_sets):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    sets = dai_prompt_sets(ks=(0, 1, 3), n_test=4)
    cfg = config(dai_block, n_demos=[1, 3], demo_seeds=[0], lr=0.05, epochs=1, n_queries=3)
    arrays, correct, runs = run_dai(model, tok, sets, cfg, progress=False)
    L, D = model.config.num_hidden_layers, model.config.hidden_size
    assert arrays["k"].tolist() == [1, 3] and arrays["zs_outputs"].shape == (3, L, D)
    assert arrays["icl_outputs"].shape == arrays["ft_outputs"].shape == (2, 3, L, D)
    assert runs["n_steps"].tolist() == [1, 3] and (runs["update_norm"] > 0).all()
    assert list(correct.columns[:4]) == ["k", "seed", "uid", "label_index"] and len(correct) == 6
    # fine-tuning moved the zero-shot attention outputs ...
    assert not np.allclose(arrays["ft_outputs"][0], arrays["zs_outputs"])
    # ... but not the base model's: the second prompt set's ICL capture (taken after the first set was
    # fine-tuned) equals a capture of the restored base model
    second = select_prompt_sets(sets, cfg)[1]
    texts = [q["query"] for q in pick_queries([second], cfg.n_queries, cfg.seed)]
    base_icl = capture(model, tok, second["prefix"], texts, forward.label_token_ids(tok, second["label_words"]))
    np.testing.assert_array_equal(arrays["icl_outputs"][1], base_icl.outputs)
    np.testing.assert_array_equal(arrays["icl_scores"][1], base_icl.scores)
    metrics = similarity.query_metrics(capture_from(arrays, "zs"), capture_from(arrays, "icl", 0),
                                       capture_from(arrays, "ft", 0), seed=0)
    assert all(v.shape == (3, L) for v in metrics.values())
    again, _, _ = run_dai(model, tok, sets, cfg, progress=False)
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], again[key])


def test_fine_tuning_trains_exactly_k_and_v_and_restores_the_weights(tiny, dai_block, dai_prompt_sets, monkeypatch):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    base = {name: p.detach().clone() for name, p in model.named_parameters()}
    kv = {name for name in base if KV.search(name)}
    layers = range(model.config.num_hidden_layers)
    assert {KV.search(n).groups() for n in kv} == {(str(i), p) for i in layers for p in "kv"}
    after_training = []
    train = training.train

    def spy(model_, *args, **kwargs):
        result = train(model_, *args, **kwargs)
        after_training.append((
            {name: p.detach().clone() for name, p in model_.named_parameters()},
            {name for name, p in model_.named_parameters() if p.requires_grad},
        ))
        return result

    monkeypatch.setattr(training, "train", spy)
    cfg = config(dai_block, n_demos=[1, 3], demo_seeds=[0], lr=0.05, epochs=1, n_queries=3)
    run_dai(model, tok, dai_prompt_sets(ks=(0, 1, 3), n_test=4), cfg, progress=False)
    assert len(after_training) == 2  # one fine-tuning per prompt set
    for weights, requires_grad in after_training:
        assert requires_grad == kv
        frozen_changed = [name for name in base if name not in kv and not torch.equal(weights[name], base[name])]
        assert frozen_changed == []
        moved = {KV.search(name).group(2) for name in kv if not torch.equal(weights[name], base[name])}
        assert moved == {"k", "v"}  # a real step on both projections
    for name, param in model.named_parameters():  # restored bitwise, frozen again
        assert torch.equal(param.detach(), base[name]), name
        assert not param.requires_grad, name


def test_fine_tuning_restores_the_weights_when_training_fails(tiny, dai_block, dai_prompt_sets, monkeypatch):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    base = {name: p.detach().clone() for name, p in model.named_parameters()}
    train = training.train

    def fail(*args, **kwargs):
        train(*args, **kwargs)
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(training, "train", fail)
    cfg = config(dai_block, n_demos=[1], demo_seeds=[0], lr=0.05, epochs=1, n_queries=2)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_dai(model, tok, dai_prompt_sets(ks=(1,), n_test=2), cfg, progress=False)
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), base[name]) and not param.requires_grad, name

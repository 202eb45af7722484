"""Core fine-tuning (`iclgd.core.training`) on the tiny random Llama and the toy prompt set (tests/conftest.py):
examples, parameter subsets, the label loss, full-batch GD and per-demonstration SGD against plain torch autograd,
order (in)variance, training to convergence, run_status on hand-built loss sequences, and float32 master weights
(bf16 fine-tuning keeps updates bf16 alone rounds away)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from iclgd.core import forward, models, prompts, training

# toy, prompt_set, model and one_thread: tests/conftest.py
pytestmark = pytest.mark.usefixtures("one_thread")
OPTIMIZERS = ("gd", "sgd", "adam")
TARGET, BLOWUP, PATIENCE = 0.1, 3.0, 3


def examples(tok, ps):
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    return training.encode_examples(tok, training.demo_queries(ps), ps["classes"], label_ids)


def reordered(ps: dict) -> dict:
    demos = ps["demos"][::-1]
    return {**ps, "order": 1, "demos": demos, "prefix": "".join(d["text"] + "\n\n" for d in demos)}


def state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def fit(model, tok, ps, optimizer, subset="all", lr=0.05, epochs=1, **kwargs) -> training.TrainResult:
    params = training.freeze_except(model, training.select_parameters(model, subset))
    return training.train(model, examples(tok, ps), optimizer, lr, epochs, params, **kwargs)


@pytest.fixture(scope="module")
def batch(tiny) -> list[training.Example]:
    """Four fixed demonstrations of 6-9 token ids, labels among four ids: enough for a stable gradient."""
    gen = torch.Generator().manual_seed(0)
    return [training.Example(uid=i, ids=tuple(torch.randint(10, 1000, (6 + i,), generator=gen).tolist()),
                             target=[300, 301, 302, 303][i]) for i in range(4)]


def hand_loss(model, batch) -> torch.Tensor:
    """Plain reference: each example alone (no padding), -log softmax of its target over the whole
    vocabulary at its last token, averaged over the batch."""
    nll = []
    for ex in batch:
        last = model(input_ids=torch.tensor([ex.ids])).logits[0, -1].float()
        nll.append(-torch.log_softmax(last, dim=-1)[ex.target])
    return torch.stack(nll).mean()


# ---------------------------------------------------------------- examples


def test_demo_queries_are_the_zero_shot_prompts(toy, prompt_set):
    rows = toy.train.set_index("uid")
    for demo, query in zip(prompt_set["demos"], training.demo_queries(prompt_set)):
        assert query["query"] == prompts.render_query(toy.template, rows.loc[demo["uid"]].to_dict())
        assert demo["text"] == query["query"] + " " + demo["label"]


def test_examples_encode_like_zero_shot_scoring(tiny, prompt_set):
    _, tok = tiny
    (ex, *_) = examples(tok, prompt_set)
    query = training.demo_queries(prompt_set)[0]["query"]
    assert list(ex.ids) == forward.encode_prefix(tok, "") + forward.encode_query(tok, query)
    label = prompt_set["demos"][0]["label"]
    assert ex.target == tok(" " + label, add_special_tokens=False).input_ids[0]


def test_a_demo_without_its_label_word_is_refused(prompt_set):
    demo = prompt_set["demos"][0]
    bad = {**prompt_set, "demos": [{**demo, "text": demo["text"] + "!"}]}
    with pytest.raises(training.FinetuneError, match="does not end with its label word"):
        training.demo_queries(bad)


def test_examples_are_ordered_canonically_for_gd_and_as_given_otherwise(batch):
    shuffled = [batch[i] for i in (2, 0, 3, 1)]
    assert training.canonical(shuffled) == batch  # uids 0..3
    assert training.epoch_batches(shuffled, "gd") == [batch]
    one_each = [[ex] for ex in shuffled]
    assert training.epoch_batches(shuffled, "sgd") == training.epoch_batches(shuffled, "adam") == one_each


# ---------------------------------------------------------------- parameters


def test_subsets_select_intended_parameters(tiny):
    deep = models.tiny_llama(tiny[1], seed=0, layers=4)
    pick = lambda subset: set(training.select_parameters(deep, subset))  # noqa: E731
    attn = "model.layers.{}.self_attn.{}_proj.weight"
    assert pick("kv") == {attn.format(i, p) for i in range(4) for p in "kv"}
    assert pick("v_mid") == {attn.format(2, "v")}
    assert pick("v_deep") == {attn.format(3, "v")}
    everything = pick("all")
    assert everything == {n for n, _ in deep.named_parameters()}
    assert "model.embed_tokens.weight" in everything and "lm_head.weight" not in everything  # tied, listed once
    with pytest.raises(training.FinetuneError):
        training.select_parameters(deep, "q_only")


def test_layer_count_reads_the_parameter_names(tiny, model):
    assert training.layer_count(model) == 2
    assert training.layer_count(models.tiny_llama(tiny[1], seed=0, layers=3)) == 3
    with pytest.raises(training.FinetuneError, match="no parameters named"):
        training.layer_count(torch.nn.Linear(2, 2))


def test_trainable_restores_the_weights_and_freezes_even_on_error(model):
    names = training.select_parameters(model, "v_deep")
    before = state(model)
    with pytest.raises(RuntimeError, match="boom"):
        with training.trainable(model, names) as params:
            assert [p.requires_grad for p in model.parameters()].count(True) == len(params) == 1
            with torch.no_grad():
                params[0].add_(1.0)
            raise RuntimeError("boom")
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert not any(p.requires_grad or p.grad is not None for p in model.parameters())


def test_make_optimizer_plain_sgd_and_default_adam():
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd, adam = training.make_optimizer("gd", params, 0.1), training.make_optimizer("adam", params, 0.1)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0 and sgd.defaults["weight_decay"] == 0
    assert type(adam) is torch.optim.Adam and adam.defaults["betas"] == (0.9, 0.999)
    with pytest.raises(training.FinetuneError, match="rmsprop"):
        training.make_optimizer("rmsprop", params, 0.1)


# ---------------------------------------------------------------- loss and steps against autograd


def test_label_logits_are_each_examples_own_last_token_logits(model, batch):
    """Right-padded rows without an attention mask give each example's unpadded logits."""
    with torch.no_grad():
        got = training.label_logits(model, batch)
        assert got.shape == (len(batch), model.config.vocab_size)
        for row, ex in zip(got, batch):
            want = model(input_ids=torch.tensor([ex.ids])).logits[0, -1]
            torch.testing.assert_close(row, want, rtol=0, atol=1e-5)


def test_label_loss_is_the_full_vocabulary_cross_entropy(model, batch):
    with torch.no_grad():
        logits = training.label_logits(model, batch).double()
        hand = [float(torch.logsumexp(row, 0) - row[ex.target]) for row, ex in zip(logits, batch)]
        assert training.label_loss(model, batch).item() == pytest.approx(np.mean(hand), rel=1e-6)
        assert training.label_loss(model, batch, "sum").item() == pytest.approx(sum(hand), rel=1e-6)
        assert training.label_loss(model, batch).item() == pytest.approx(hand_loss(model, batch).item(), rel=1e-5)


def test_micro_batches_pack_by_length_under_the_budgets():
    lengths = [9, 3, 5, 3, 12]
    batch = [training.Example(uid=i, ids=tuple(range(n)), target=0) for i, n in enumerate(lengths)]
    # Sorted lengths 3, 3, 5, 9, 12; rows * longest <= 16: [3, 3, 5] (15), [9] (18 > 16 with two), [12].
    groups = training.micro_batches(batch, micro_batch=0, batch_tokens=16)
    assert [[ex.uid for ex in g] for g in groups] == [[1, 3, 2], [0], [4]]
    # A row cap of 2 splits the first group; an ample budget keeps everything in length order.
    assert [len(g) for g in training.micro_batches(batch, 2, 1024)] == [2, 2, 1]
    assert [ex.uid for ex in training.micro_batches(batch, 0, 1024)[0]] == [1, 3, 2, 0, 4]


@pytest.mark.parametrize("micro_batch,batch_tokens", [(0, 1024), (0, 20), (1, 1024)])
def test_a_gd_epoch_is_one_step_down_the_autograd_gradient(model, batch, micro_batch, batch_tokens):
    """All parameters (the tied embedding/head through FactoredVocab), however the batch is packed: one
    epoch of gd moves every weight by -lr x autograd's gradient of the mean label loss."""
    lr = 0.05
    params = training.freeze_except(model, training.select_parameters(model, "all"))
    before = [p.detach().clone() for p in params]
    loss = hand_loss(model, batch)
    grads = torch.autograd.grad(loss, params)
    packed = training.micro_batches(training.canonical(batch), micro_batch, batch_tokens)
    assert len(packed) == (1 if (micro_batch, batch_tokens) == (0, 1024) else 2 if batch_tokens == 20 else 4)
    result = training.train(model, batch, "gd", lr, 1, params, micro_batch=micro_batch, batch_tokens=batch_tokens)
    assert result.losses == [pytest.approx(loss.item(), rel=1e-5)]
    for p, start, grad in zip(params, before, grads):
        torch.testing.assert_close(p.detach(), start - lr * grad, rtol=0, atol=1e-6)
    assert max(float(g.abs().max()) for g in grads) > 1e-2  # the step is not vacuous


def test_an_sgd_epoch_steps_once_per_example_in_prompt_order(model, batch):
    """sgd: one step of -lr x autograd's gradient per demonstration, in the order given (not canonical)."""
    lr, order = 0.05, [batch[i] for i in (3, 1, 0, 2)]
    ref, start = copy.deepcopy(model), copy.deepcopy(model)
    ref_params = training.freeze_except(ref, training.select_parameters(ref, "all"))
    losses = []
    for ex in order:
        loss = hand_loss(ref, [ex])
        losses.append(loss.item())
        grads = torch.autograd.grad(loss, ref_params)
        with torch.no_grad():
            for p, grad in zip(ref_params, grads):
                p.sub_(lr * grad)
    params = training.freeze_except(model, training.select_parameters(model, "all"))
    result = training.train(model, order, "sgd", lr, 1, params)
    assert result.losses == [pytest.approx(np.mean(losses), rel=1e-5)]
    # Four float32 steps in two summation orders (FactoredVocab's gradient vs autograd's) differ by up to
    # 1.04e-6 on an AMD EPYC (weights ~0.2; 0.9e-6 on an Intel Xeon); a wrong step would move them by ~lr x grad.
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=4e-6, msg=name)
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(model.parameters(), start.parameters()))
    assert moved > 1e-3  # the steps are not vacuous: 250x the tolerance


@pytest.mark.parametrize("micro_batch,batch_tokens", [(0, 1024), (3, 1024), (0, 30)])
def test_full_batch_gd_is_bitwise_order_invariant(model, tiny, prompt_set, micro_batch, batch_tokens):
    tok = tiny[1]
    base = training.snapshot(model, [n for n, _ in model.named_parameters()])
    budget = {"micro_batch": micro_batch, "batch_tokens": batch_tokens}
    fit(model, tok, prompt_set, "gd", epochs=2, **budget)
    first = state(model)
    training.restore(model, base)
    fit(model, tok, reordered(prompt_set), "gd", epochs=2, **budget)
    second = state(model)
    assert any(not torch.equal(first[n], base[n]) for n in base)  # it did train
    assert all(torch.equal(first[n], second[n]) for n in first)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_per_demo_optimisers_depend_on_order(model, tiny, prompt_set, optimizer):
    tok = tiny[1]
    base = training.snapshot(model, [n for n, _ in model.named_parameters()])
    fit(model, tok, prompt_set, optimizer, lr=0.05)
    first = state(model)
    training.restore(model, base)
    fit(model, tok, reordered(prompt_set), optimizer, lr=0.05)
    assert any(not torch.equal(first[n], p) for n, p in model.named_parameters())


def test_frozen_parameters_stay_put_without_grads_or_state(model, tiny, prompt_set):
    tok = tiny[1]
    before = state(model)
    trained = set(training.select_parameters(model, "kv"))
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


# ---------------------------------------------------------------- train_until


#: The divergence rule of config/schema.yaml's defaults (finetune.blowup, finetune.diverge_patience).
DIVERGE = {"blowup": BLOWUP, "diverge_patience": PATIENCE}


def until(model, tok, ps, optimizer="gd", lr=0.05, max_epochs=100, target_loss=0.1, subset="all"):
    params = training.freeze_except(model, training.select_parameters(model, subset))
    return training.train_until(model, examples(tok, ps), optimizer, lr, params, max_epochs, target_loss, **DIVERGE)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_training_stops_as_soon_as_the_demonstrations_are_learned(model, tiny, prompt_set, optimizer):
    tok = tiny[1]
    lr = {"gd": 0.05, "sgd": 0.02, "adam": 1e-3}[optimizer]
    result = until(model, tok, prompt_set, optimizer, lr)
    assert result.status == "converged" and 0 < result.epochs < 100
    last, before = result.fits[-1], result.fits[-2]
    assert last.learned and last.loss < 0.1
    assert not (before.learned and before.loss < 0.1)  # it stopped at the first epoch that got there
    with torch.no_grad():  # the reported fit is the weights' own: every label is the argmax, loss as said
        batch = training.canonical(examples(tok, prompt_set))
        logits = training.label_logits(model, batch)
        assert (logits.argmax(-1) == torch.tensor([ex.target for ex in batch])).all()
        assert training.label_loss(model, batch).item() == pytest.approx(last.loss, rel=1e-4)


def test_a_rate_that_raises_the_loss_is_diverged(model, tiny, prompt_set):
    result = until(model, tiny[1], prompt_set, "gd", lr=50.0)
    assert result.status == "diverged" and not result.fits[-1].loss <= result.fits[0].loss
    # it stopped at the first epoch the rule fired
    rule = (0.1, DIVERGE["blowup"], DIVERGE["diverge_patience"])
    assert all(training.run_status(result.fits[:n], *rule) is None for n in range(1, len(result.fits)))


def test_a_base_model_that_already_fits_still_takes_an_update(model, tiny, prompt_set):
    """Once trained, the model fits its demonstrations before any update: it is converged only after one epoch."""
    tok = tiny[1]
    assert until(model, tok, prompt_set, "gd", lr=0.05).status == "converged"
    result = until(model, tok, prompt_set, "gd", lr=0.0)  # starts from the trained weights
    assert result.fits[0].learned and result.fits[0].loss < 0.1
    assert result.status == "converged" and result.epochs == 1


def test_max_epochs_without_learning_is_not_converged(model, tiny, prompt_set):
    result = until(model, tiny[1], prompt_set, "gd", lr=1e-4, max_epochs=3)
    assert result.status == "not_converged" and result.epochs == 3 and len(result.fits) == 4


# ---------------------------------------------------------------- run_status

def status(*losses: float, learned_last: bool = False, patience: int = PATIENCE) -> str | None:
    """Status after the hand-built mean losses (the first: the base model); only the last fit may be learned."""
    fits = [training.Fit(loss, False) for loss in losses[:-1]] + [training.Fit(losses[-1], learned_last)]
    return training.run_status(fits, TARGET, BLOWUP, patience)


def test_one_epoch_above_the_start_is_not_yet_diverged():
    assert status(2.0, 2.5) is None
    assert status(2.0, 2.5, 2.4) is None


def test_a_rise_that_persists_for_patience_epochs_is_diverged():
    assert status(2.0, 2.1, 2.2, 2.3) == "diverged"  # three epochs in a row above the start
    assert status(2.0, 2.1, 2.2, 2.3, patience=4) is None
    assert status(2.0, 2.5, patience=1) == "diverged"  # patience 1: the old rule, the first rise


def test_a_dip_back_below_the_start_resets_the_count():
    assert status(2.0, 2.1, 2.2, 1.9, 2.1, 2.2) is None
    assert status(2.0, 2.1, 2.2, 1.9, 2.1, 2.2, 2.05) == "diverged"
    assert status(2.0, 2.0, 2.0, 2.0) is None  # equal to the start is not above it


def test_a_blow_up_diverges_at_once():
    assert status(2.0, 6.5) == "diverged"  # above 3 x the start after one epoch
    assert status(2.0, 5.9) is None  # a large first rise below the blow-up factor waits for patience
    assert status(2.0, 1.0, 6.1) == "diverged"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_diverges_at_once(bad):
    assert status(2.0, bad) == "diverged"
    assert status(bad) == "diverged"


def test_convergence_needs_at_least_one_epoch_of_updates():
    assert status(0.01, learned_last=True) is None  # the base model already fits: not a fine-tuned model
    assert status(0.01, 0.01, learned_last=True) == "converged"
    assert status(2.0, 0.05, learned_last=True) == "converged"


def test_convergence_needs_every_label_learned_and_the_loss_below_target():
    assert status(2.0, 0.05, learned_last=False) is None  # low loss, one label wrong
    assert status(2.0, 0.5, learned_last=True) is None  # learned, loss above target
    assert status(2.0, 2.5, 0.05, learned_last=True) == "converged"  # a brief rise does not stop a run


# ---------------------------------------------------------------- float32 master weights

WV = "model.layers.1.self_attn.v_proj.weight"  # v_mid of the 2-layer tiny Llama


def copy_in(tiny, dtype: torch.dtype, spread: bool = False):
    """A private copy of the tiny model in `dtype`; `spread`: W_V's entries set to +-0.02, where a bf16
    step is 2^-13 ~ 1.2e-4 (half of it rounds away) for every element alike."""
    model = copy.deepcopy(tiny[0]).to(dtype)
    if spread:
        weight = model.get_parameter(WV)
        with torch.no_grad():
            weight.copy_(0.02 * torch.sign(torch.randn(weight.shape, generator=torch.Generator().manual_seed(1))))
    return model


def run(model, batch, optimizer: str, lr: float, epochs: int, subset: str = "v_mid", **kwargs):
    """Train `subset` in place (left trained), returning the result and the trained parameters."""
    params = training.freeze_except(model, training.select_parameters(model, subset))
    return training.train(model, batch, optimizer, lr, epochs, params, **kwargs), params


def test_bf16_alone_rounds_a_small_adam_step_away(tiny, batch):
    model = copy_in(tiny, torch.bfloat16, spread=True)
    before = model.get_parameter(WV).detach().clone()
    run(model, batch, "adam", 1e-5, 5, master_weights=False)  # each step ~1e-5 < half a bf16 step
    assert torch.equal(model.get_parameter(WV), before)


@pytest.mark.parametrize("optimizer,lr", [("adam", 1e-5), ("sgd", None)])
def test_masters_keep_small_steps_until_bf16_shows_them(tiny, batch, optimizer, lr):
    """One step moves the float32 master by lr x grad (Adam: ~lr) and leaves bf16 as it was; enough
    steps of the same size move the bf16 weights too."""
    model = copy_in(tiny, torch.bfloat16, spread=True)
    weight, before = model.get_parameter(WV), model.get_parameter(WV).detach().clone()
    training.freeze_except(model, [WV])
    training._backward(model, batch[:1], 0, 1024)
    grad = weight.grad.float()
    lr = lr or 3e-5 / float(grad.abs().max())  # sgd: the largest step a quarter of a bf16 step
    result, _ = run(model, batch[:1], optimizer, lr, 1)
    (master,) = result.optimizer.param_groups[0]["params"]
    assert master.dtype == torch.float32 and master is not weight
    assert torch.equal(weight, before)  # nothing visible in bf16 yet
    moved = before.float() - master.detach()
    if optimizer == "sgd":
        torch.testing.assert_close(moved, lr * grad, rtol=1e-3, atol=1e-9)
        big = 12 * lr * grad.abs() > 1e-4  # 12 steps add up to more than half a bf16 step (6.1e-5)
    else:  # Adam's first step: lr x g / (|g| + eps), ~lr wherever the gradient is not tiny
        big = grad.abs() > 1e-6
        torch.testing.assert_close(moved[big], lr * torch.sign(grad[big]), rtol=1e-2, atol=1e-8)
    run(model, batch[:1], optimizer, lr, 1)  # a fresh run starts its masters from the bf16 weights
    assert torch.equal(weight, before)
    run(model, batch[:1], optimizer, lr, 12)
    assert big.float().mean() > 0.1 and (weight != before)[big].float().mean() > 0.95


def delta(model, base: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return model.get_parameter(name).detach().float() - base[name].float()


@pytest.mark.parametrize("optimizer,lr", [("gd", 0.05), ("sgd", 0.02), ("adam", 1e-3)])
def test_bf16_with_masters_tracks_float32_training(tiny, batch, optimizer, lr):
    """Subset `all` (tied embedding/head through FactoredVocab): the bf16 run's updates follow the float32
    run's closely; without masters small updates are lost."""
    names = ["model.embed_tokens.weight", WV, "model.layers.0.mlp.down_proj.weight"]
    ref, half, lost = (copy_in(tiny, dtype) for dtype in (torch.float32, torch.bfloat16, torch.bfloat16))
    bases = [training.snapshot(m, names) for m in (ref, half, lost)]
    fp32, _ = run(ref, batch, optimizer, lr, 3, "all")
    bf16, _ = run(half, batch, optimizer, lr, 3, "all")
    run(lost, batch, optimizer, lr, 3, "all", master_weights=False)
    np.testing.assert_allclose(bf16.losses, fp32.losses, rtol=2e-2)
    for name in names:
        want = delta(ref, bases[0], name)
        err = (delta(half, bases[1], name) - want).norm() / want.norm()
        err_lost = (delta(lost, bases[2], name) - want).norm() / want.norm()
        assert err < 0.25 and err < err_lost, (name, float(err), float(err_lost))


@pytest.mark.parametrize("optimizer", ["gd", "sgd", "adam"])
def test_float32_training_is_bitwise_what_it_was(tiny, batch, optimizer):
    """float32 parameters get no masters: the optimiser steps the model's own tensors, and the weights
    equal a hand-written run of the old loop (make_optimizer + FactoredVocab + _backward + step) bitwise."""
    model, ref = copy_in(tiny, torch.float32), copy_in(tiny, torch.float32)
    result, params = run(model, batch, optimizer, 0.02, 1, "all")
    assert all(a is b for a, b in zip(result.optimizer.param_groups[0]["params"], params))
    params = training.freeze_except(ref, training.select_parameters(ref, "all"))
    opt = training.make_optimizer(optimizer, params, 0.02)
    with training.FactoredVocab(ref) as vocab:
        for chunk in training.epoch_batches(batch, optimizer):
            vocab.zero_grad(opt)
            training._backward(ref, chunk, 0, 1024)
            vocab.step(opt)
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), name


def test_train_until_and_trainable_restore_with_masters(tiny, batch):
    """A bf16 run to convergence through masters, then `trainable` restores the bf16 weights bitwise."""
    model = copy_in(tiny, torch.bfloat16)
    names = training.select_parameters(model, "all")
    before = training.snapshot(model, names)
    with training.trainable(model, names) as params:
        result = training.train_until(model, batch, "gd", 0.1, params, 30, 0.1, blowup=10.0, diverge_patience=5)
        assert result.status == "converged" and result.fits[-1].loss < result.fits[0].loss
        assert all(p.grad is None for p in params)
    assert all(torch.equal(model.get_parameter(n), before[n]) for n in names)
    assert not any(p.requires_grad for p in model.parameters())

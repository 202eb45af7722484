"""run_status on hand-built loss sequences: divergence needs a blow-up or a persistent rise, convergence an
update; float32 master weights make bf16 fine-tuning keep updates bf16 alone rounds away."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from iclgd.core import training

TARGET, BLOWUP, PATIENCE = 0.1, 3.0, 3


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


@pytest.fixture(scope="module")
def batch(tiny) -> list[training.Example]:
    """Four fixed demonstrations of 6-9 token ids, labels among four ids: enough for a stable gradient."""
    gen = torch.Generator().manual_seed(0)
    return [training.Example(uid=i, ids=tuple(torch.randint(10, 1000, (6 + i,), generator=gen).tolist()),
                             target=[300, 301, 302, 303][i]) for i in range(4)]


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

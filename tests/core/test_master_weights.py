"""Float32 master weights (iclgd.core.master_weights) on hand-sized tensors: float32 parameters are their own
master, a step smaller than half a bf16 spacing accumulates in the master until bf16 shows it, extra gradient
terms add to a parameter's own, and a deferred parameter waits for `copy_back`."""

from __future__ import annotations

import torch

from iclgd.core.master_weights import MasterWeights

BF16 = torch.bfloat16


def test_float32_parameters_and_disabled_masters_step_the_parameters_themselves():
    p = torch.nn.Parameter(torch.ones(3))
    masters = MasterWeights([p])
    assert not masters.active and masters.params[0] is p and masters.master(p) is p
    half = torch.nn.Parameter(torch.ones(3, dtype=BF16))
    off = MasterWeights([half], enabled=False)
    assert not off.active and off.params[0] is half
    on = MasterWeights([p, half])
    assert on.active and on.params[0] is p and on.master(half).dtype == torch.float32
    assert torch.equal(on.master(half), half.float()) and on.master(half) is not half


def test_steps_below_half_a_bf16_spacing_accumulate_in_the_master_until_bf16_shows_them():
    weight = torch.nn.Parameter(torch.full((4,), 0.02, dtype=BF16))  # bf16 spacing at 0.02: 2^-13 ~ 1.22e-4
    start = weight.detach().clone()
    masters = MasterWeights([weight])
    opt = torch.optim.SGD(masters.params, lr=1e-5)
    for _ in range(6):  # 6 x 1e-5 = 6e-5 < half a spacing (6.1e-5): rounds back to the same bf16 value
        weight.grad = torch.ones(4, dtype=BF16)
        masters.step(opt)
        assert weight.grad is None and masters.master(weight).grad is None
    assert torch.equal(weight, start)
    torch.testing.assert_close(masters.master(weight), start.float() - 6e-5, rtol=0, atol=1e-8)  # float32 rounding
    weight.grad = torch.ones(4, dtype=BF16)
    masters.step(opt)  # 7e-5: past half a spacing, bf16 moves down one step
    assert torch.equal(weight.float(), start.float() - 2.0**-13)


def test_extra_terms_add_to_the_gradient_and_deferred_parameters_wait_for_copy_back():
    a, b = (torch.nn.Parameter(torch.zeros(2, dtype=BF16)) for _ in range(2))
    masters = MasterWeights([a, b])
    opt = torch.optim.SGD(masters.params, lr=1.0)
    a.grad = torch.tensor([1.0, 2.0], dtype=BF16)  # b has no gradient of its own: only its extra term
    masters.step(opt, extra={id(a): torch.tensor([0.5, 0.5]), id(b): torch.tensor([0.25, -1.0])}, defer=[a])
    assert torch.equal(masters.master(a), torch.tensor([-1.5, -2.5]))
    assert torch.equal(a, torch.zeros(2, dtype=BF16))  # deferred: the caller updates its master further
    assert torch.equal(b.float(), torch.tensor([-0.25, 1.0]))
    masters.copy_back([a])
    assert torch.equal(a.float(), torch.tensor([-1.5, -2.5]))
    a.grad = torch.ones(2, dtype=BF16)
    masters.zero_grad()
    assert a.grad is None and b.grad is None

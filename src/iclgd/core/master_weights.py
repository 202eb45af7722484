"""Float32 master weights for fine-tuning a low-precision (bf16) model.

On a GPU `runtime.dtype` is bf16, whose 8-bit mantissa spaces values near a weight of 0.02 about
1.2e-4 apart: an Adam step of 1e-5 or an SGD step of lr 1e-4 x a small gradient rounds back to the
same bf16 weight, so the model would never move. `MasterWeights` keeps a float32 copy of every trained
parameter that is not float32; the optimiser steps the copies and the model's parameters are set from
them (rounded) after each step, so small updates accumulate in the masters until they show in bf16.

Gradients are cast to float32 one parameter at a time and the optimiser is stepped per parameter (the
others' gradients are held aside), so a full-model float32 gradient never exists at once. A model
whose trained parameters are all float32 gets no masters (`active` is False) and trains exactly as
before: same tensors, same optimiser calls, bitwise the same weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch


class MasterWeights:
    """float32 masters of the non-float32 parameters in `params` (float32 ones are their own master)."""

    def __init__(self, params: Sequence[torch.nn.Parameter], enabled: bool = True) -> None:
        self.model_params = list(params)
        self.active = enabled and any(p.dtype != torch.float32 for p in self.model_params)
        self._master: dict[int, torch.Tensor] = {}
        if self.active:
            for p in self.model_params:
                if p.dtype != torch.float32:
                    self._master[id(p)] = torch.nn.Parameter(p.detach().float(), requires_grad=True)

    @property
    def params(self) -> list[torch.Tensor]:
        """What the optimiser steps: the masters, or the parameters themselves when inactive."""
        return [self.master(p) for p in self.model_params]

    def master(self, param: torch.Tensor) -> torch.Tensor:
        """The float32 tensor that holds `param`'s value between steps (`param` itself if float32)."""
        return self._master.get(id(param), param)

    def zero_grad(self) -> None:
        """Drop the model parameters' (low-precision) gradients; the optimiser drops the masters'."""
        for p in self.model_params:
            p.grad = None

    @torch.no_grad()
    def step(self, optimizer: torch.optim.Optimizer, extra: dict[int, torch.Tensor] | None = None,
             defer: Iterable[torch.Tensor] = ()) -> None:
        """One optimiser step on the masters from the model's gradients, then copy the masters back.

        `extra`: float32 gradient terms added to a parameter's (by id), e.g. FactoredVocab's dense head
        gradient; `defer`: parameters not copied back yet (the caller updates their master further).
        """
        extra = dict(extra or {})
        held = {id(p): p.grad for p in self.model_params}
        for p in self.model_params:
            p.grad = None
            self.master(p).grad = None
        skip = {id(p) for p in defer}
        for p in self.model_params:
            grad, more = held.pop(id(p)), extra.pop(id(p), None)
            if grad is None and more is None:
                continue
            grad = _as_float32(grad, dense=more is not None)
            grad = more if grad is None else grad.add_(more) if more is not None else grad
            master = self.master(p)
            master.grad = grad
            del grad
            optimizer.step()  # only this master has a gradient: the others are skipped
            master.grad = None
            if id(p) not in skip:
                self.copy_back([p])

    @torch.no_grad()
    def copy_back(self, params: Iterable[torch.Tensor]) -> None:
        """Set the model's parameters to their masters, rounded to the parameters' dtype."""
        for p in params:
            master = self.master(p)
            if master is not p:
                p.copy_(master)


def _as_float32(grad: torch.Tensor | None, dense: bool) -> torch.Tensor | None:
    """A float32 gradient (a new tensor unless it already was one); sparse stays sparse unless `dense`."""
    if grad is None:
        return None
    if dense and grad.is_sparse:
        grad = grad.to_dense()
    return grad if grad.dtype == torch.float32 else grad.float()

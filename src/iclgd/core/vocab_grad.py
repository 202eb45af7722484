"""Gradients of the vocabulary matrices without a dense vocab x hidden gradient.

Fine-tuning all parameters trains the input embedding and the output head, which small models tie
into one matrix (Gemma-3-270M: 262k x 640 = 168 M of its 268 M parameters). Autograd would give it
a dense gradient per micro-batch (zero-fill, then add) although only a handful of rows are looked up
and the head's gradient has rank <= rows scored: profiled, that was half of a Gemma training step,
and the dense buffers dominated its peak memory. Inside `FactoredVocab`

* the input embedding returns a sparse gradient (only the looked-up rows), and
* the output head records its weight gradient as factors (dL/dlogits, hidden), which `step` applies
  with one `addmm_` after plain SGD (`gd`, `sgd`), or adds to a dense gradient first for any other
  optimizer (Adam keeps dense state anyway).

The update equals the dense one up to float rounding (tested); factors are applied in the order the
micro-batches ran, so full-batch GD over a canonical order stays bitwise order-invariant. With float32
`MasterWeights` (a bf16 model) the factors go to the head's master in float32 instead.
"""

from __future__ import annotations

import torch

from iclgd.core.master_weights import MasterWeights


class _Head(torch.autograd.Function):
    """hidden @ weight.T whose weight gradient goes to `sink` as (grad_logits, hidden) factors."""

    @staticmethod
    def forward(ctx, hidden, weight, sink):
        ctx.save_for_backward(hidden, weight)
        ctx.sink = sink
        return hidden @ weight.T

    @staticmethod
    def backward(ctx, grad):
        hidden, weight = ctx.saved_tensors
        ctx.sink.append((grad.reshape(-1, grad.shape[-1]), hidden.reshape(-1, hidden.shape[-1])))
        return grad @ weight, None, None


class FactoredVocab:
    """Context manager: factored head gradient and sparse embedding gradient while training.

    Inactive (a no-op) when the head is frozen or has a bias; then autograd's dense path runs.
    """

    def __init__(self, model, masters: MasterWeights | None = None) -> None:
        self.masters = masters if masters is not None and masters.active else None
        self.head = model.get_output_embeddings()
        self.embed = model.get_input_embeddings()
        self.factors: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.active = bool(self.head.weight.requires_grad and getattr(self.head, "bias", None) is None)
        self._sparse = self.embed.sparse

    def __enter__(self) -> FactoredVocab:
        if self.active:
            self.head.forward = lambda hidden: _Head.apply(hidden, self.head.weight, self.factors)
            self.embed.sparse = bool(self.embed.weight.requires_grad)
        return self

    def __exit__(self, *exc) -> None:
        if self.active:
            del self.head.forward  # back to the class's forward
            self.embed.sparse = self._sparse
        self.factors.clear()

    def zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        if self.masters is not None:
            self.masters.zero_grad()
        self.factors.clear()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step() with the recorded factors included in the head's gradient."""
        if self.masters is not None:
            self._master_step(optimizer, self.masters)
            return
        if not self.factors:
            optimizer.step()
            return
        if type(optimizer) is torch.optim.SGD and _plain(optimizer):
            optimizer.step()  # sparse embedding rows and every dense gradient
            grads, hidden = self._stacked()
            with torch.no_grad():
                self.head.weight.addmm_(grads.T, hidden, alpha=-optimizer.param_groups[0]["lr"])
        else:
            self._densify()
            optimizer.step()
        self.factors.clear()

    def _master_step(self, optimizer: torch.optim.Optimizer, masters: MasterWeights) -> None:
        """The same update on the float32 masters: SGD's head factors go to the head's master with one
        addmm_ (then it is copied back); other optimisers get the dense head gradient in float32."""
        head = self.head.weight
        if not self.factors:
            masters.step(optimizer)
        elif type(optimizer) is torch.optim.SGD and _plain(optimizer):
            masters.step(optimizer, defer=[head])
            grads, hidden = self._stacked(torch.float32)
            with torch.no_grad():
                masters.master(head).addmm_(grads.T, hidden, alpha=-optimizer.param_groups[0]["lr"])
            masters.copy_back([head])
        else:
            self._sparse_to_dense()
            grads, hidden = self._stacked(torch.float32)
            masters.step(optimizer, extra={id(head): grads.T @ hidden})
        self.factors.clear()

    def _stacked(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        grads, hidden = zip(*self.factors)
        dtype = dtype or self.head.weight.dtype
        return torch.cat(grads).to(dtype), torch.cat(hidden).to(dtype)

    def _sparse_to_dense(self) -> None:
        for param in {id(p): p for p in (self.embed.weight, self.head.weight)}.values():
            if param.grad is not None and param.grad.is_sparse:
                param.grad = param.grad.to_dense()

    def _densify(self) -> None:
        self._sparse_to_dense()
        grads, hidden = self._stacked()
        weight = self.head.weight
        dense = grads.T @ hidden
        weight.grad = dense if weight.grad is None else weight.grad.add_(dense)


def _plain(optimizer: torch.optim.SGD) -> bool:
    """No momentum, weight decay or per-group lr: then the head's update is just -lr x gradient."""
    groups = optimizer.param_groups
    return len(groups) == 1 and not groups[0]["momentum"] and not groups[0]["weight_decay"] and not groups[0]["maximize"]

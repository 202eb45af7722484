"""Fine-tuning on demonstrations: the training loop every study shares.

Every demonstration becomes one training example: its zero-shot prompt, encoded exactly as
`forward` encodes a k = 0 query, with the first token of " <label word>" as the target at the
prompt's last position; a trained model evaluated zero-shot therefore sees identical inputs.
Optimisers: "gd" (full batch, mean loss, demonstrations in a canonical uid order so any two
orderings give bitwise-identical weights), "sgd" and "adam" (batch size 1, one step per
demonstration in the prompt's order, so order matters, as in Dai et al.). Parameter subsets:
"all", "kv" (k_proj + v_proj of every layer), "v_mid" (v_proj of layer n_layers // 2) and
"v_deep" (v_proj of the last layer). `train_until` trains until the demonstrations are *learned*
after at least one epoch of updates (every label is the full-vocabulary argmax and the mean label
loss is below `target_loss`: converged), the run diverges (the loss stops being finite, blows up
past `blowup` x its start, or stays above its start for `diverge_patience` epochs in a row), or
`max_epochs` pass (not converged): an ICL-vs-GD comparison is only meaningful against a GD that
has learned what ICL was shown, and a model that was never updated is no GD at all. Parameters that
are not float32 (bf16 on a GPU) are stepped through float32 master copies (`master_weights`).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from iclgd.core import forward, prompts
from iclgd.core.master_weights import MasterWeights
from iclgd.core.vocab_grad import FactoredVocab  # noqa: F401 (re-exported)

OPTIMIZERS = ("gd", "sgd", "adam")
SUBSETS = ("all", "kv", "v_mid", "v_deep")
#: How a run ended: demonstrations learned / max_epochs reached first / loss not finite, blown up or
#: persistently above its start (`run_status`).
STATUSES = ("converged", "not_converged", "diverged")

_ATTN_PROJ = re.compile(r"(?:^|\.)layers\.(\d+)\.self_attn\.([kv])_proj\.")


class FinetuneError(ValueError):
    """A grid, subset or dev split that cannot be run as asked."""


@dataclass(frozen=True)
class Example:
    """One training example: prompt token ids and the label token at its last position."""

    uid: int
    ids: tuple[int, ...]
    target: int


@dataclass
class TrainResult:
    """Mean training loss of every epoch (before that epoch's updates) and the optimiser used."""

    losses: list[float] = field(default_factory=list)
    optimizer: torch.optim.Optimizer | None = None


@dataclass(frozen=True)
class Fit:
    """How well the model fits its demonstrations at one point of training."""

    loss: float  # mean label cross-entropy over the full vocabulary (nats)
    learned: bool  # every demonstration's label token is the full-vocabulary argmax


@dataclass
class RunResult:
    """The fit after 0, 1, ... epochs (`fits[0]`: the base model) and how the run ended."""

    fits: list[Fit]
    status: str  # one of STATUSES

    @property
    def epochs(self) -> int:
        return len(self.fits) - 1


# ---------------------------------------------------------------- examples


def demo_queries(prompt_set: dict[str, Any]) -> list[dict[str, Any]]:
    """The demonstrations as zero-shot queries: each demo text minus its trailing " <label word>"
    (`prompts.demo_inputs`)."""
    texts = prompts.demo_inputs(prompt_set, FinetuneError)
    return [{"uid": demo["uid"], "label": demo["label"], "query": text}
            for demo, text in zip(prompt_set["demos"], texts)]


def encode_examples(
    tokenizer, queries: Sequence[dict[str, Any]], classes: Sequence[str], label_ids: Sequence[int]
) -> list[Example]:
    """Encode queries exactly as `forward.score_queries` encodes a zero-shot (empty-prefix) prompt."""
    prefix = forward.encode_prefix(tokenizer, "")
    return [
        Example(
            uid=int(q["uid"]),
            ids=tuple(prefix + forward.encode_query(tokenizer, q["query"])),
            target=label_ids[classes.index(q["label"])],
        )
        for q in queries
    ]


def canonical(examples: Iterable[Example]) -> list[Example]:
    """A fixed order (uid, then tokens) that makes full-batch GD independent of the prompt order."""
    return sorted(examples, key=lambda ex: (ex.uid, ex.ids, ex.target))


# ---------------------------------------------------------------- parameters


def layer_count(model) -> int:
    """Decoder layers, read from parameter names so nested configs (Gemma 3) need no special case."""
    layers = {int(m.group(1)) for name, _ in model.named_parameters() if (m := _ATTN_PROJ.search(name))}
    if not layers:
        raise FinetuneError("model has no parameters named like 'layers.<i>.self_attn.{k,v}_proj'")
    return max(layers) + 1


def select_parameters(model, subset: str) -> list[str]:
    """Names of the parameters a subset trains (tied embeddings appear once, as in named_parameters)."""
    names = [name for name, _ in model.named_parameters()]
    if subset == "all":
        return names
    n_layers = layer_count(model)
    wanted = {
        "kv": lambda layer, proj: True,
        "v_mid": lambda layer, proj: proj == "v" and layer == n_layers // 2,
        "v_deep": lambda layer, proj: proj == "v" and layer == n_layers - 1,
    }
    if subset not in wanted:
        raise FinetuneError(f"unknown parameter subset {subset!r} (known: {list(SUBSETS)})")
    picked = [n for n in names if (m := _ATTN_PROJ.search(n)) and wanted[subset](int(m.group(1)), m.group(2))]
    if not picked:
        raise FinetuneError(f"subset {subset!r} selects no parameters")
    return picked


def freeze_except(model, names: Iterable[str]) -> list[torch.nn.Parameter]:
    """Only `names` require grad, so frozen weights get neither gradients nor optimiser state."""
    keep = set(names)
    params = []
    for name, param in model.named_parameters():
        param.requires_grad_(name in keep)
        param.grad = None
        if name in keep:
            params.append(param)
    return params


def snapshot(model, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """CPU copies of the named parameters: restoring them is cheaper than reloading the model."""
    params = dict(model.named_parameters())
    return {name: params[name].detach().to("cpu", copy=True) for name in names}


@torch.no_grad()
def restore(model, saved: dict[str, torch.Tensor], names: Iterable[str] | None = None) -> None:
    """Copy saved weights back in place (all of them, or just `names`) and drop gradients."""
    params = dict(model.named_parameters())
    for name in saved if names is None else names:
        params[name].copy_(saved[name])
        params[name].grad = None


@contextlib.contextmanager
def trainable(model, names: Iterable[str], base: dict[str, torch.Tensor] | None = None) -> Iterator[list[torch.nn.Parameter]]:
    """Inside the block only `names` require grad (their parameters are yielded); on the way out, error
    or not, their weights are restored from `base` (a `snapshot`; taken on entry when None) and every
    parameter is frozen again, so one run can never leak its updates into the next."""
    names = list(names)
    saved = snapshot(model, names) if base is None else base
    try:
        yield freeze_except(model, names)
    finally:
        restore(model, saved, names)
        freeze_except(model, [])


# ---------------------------------------------------------------- training


def label_logits(model, batch: Sequence[Example]) -> torch.Tensor:
    """Full-vocabulary logits at each example's last token, shape (len(batch), vocab).

    Rows are right-padded without an attention mask: pads come after the answer position, so
    causal attention keeps them out of every real token, and no attention row is fully masked
    (which could put NaNs into the backward pass).
    """
    return forward.forward_at(model, [ex.ids for ex in batch], mask=False).logits[:, 0]


def label_loss(model, batch: Sequence[Example], reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the label token over the whole vocabulary (Shen et al.'s loss), in float32."""
    targets = torch.tensor([ex.target for ex in batch], device=model.device)
    return torch.nn.functional.cross_entropy(label_logits(model, batch).float(), targets, reduction=reduction)


def micro_batches(batch: Sequence[Example], micro_batch: int, batch_tokens: int) -> list[list[Example]]:
    """Split a batch into length-sorted micro-batches of at most `micro_batch` rows (0: no cap) and
    `batch_tokens` padded tokens, so short demonstrations are not padded to the longest one.

    The split depends only on the examples' lengths and their order in `batch` (canonical for gd),
    so two orderings of the same demonstrations still give bitwise-identical gradients.
    """
    order = sorted(range(len(batch)), key=lambda i: (len(batch[i].ids), i))
    lengths = [len(batch[i].ids) for i in order]
    groups = forward.length_batches(lengths, micro_batch or len(batch), batch_tokens)
    return [[batch[i] for i in order[start:stop]] for start, stop in groups]


def _backward(model, batch: Sequence[Example], micro_batch: int, batch_tokens: int, grad: bool = True) -> Fit:
    """Accumulate the gradient of the batch's mean loss, micro-batch by micro-batch (grad=False: only
    measure), and return how well the current weights fit the batch: the same forward serves both."""
    total, correct = 0.0, 0
    for chunk in micro_batches(batch, micro_batch, batch_tokens):
        targets = torch.tensor([ex.target for ex in chunk], device=model.device)
        with torch.set_grad_enabled(grad):
            logits = label_logits(model, chunk).float()
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / len(batch)
        if grad:
            loss.backward()
        total += loss.item()
        correct += int((logits.argmax(dim=-1) == targets).sum())
    return Fit(loss=total, learned=correct == len(batch))


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """gd and sgd are plain steps (no momentum, no weight decay); adam uses torch's defaults."""
    if name in ("gd", "sgd"):
        return torch.optim.SGD(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise FinetuneError(f"unknown optimizer {name!r} (known: {list(OPTIMIZERS)})")


def epoch_batches(examples: Sequence[Example], optimizer: str) -> list[list[Example]]:
    """gd: one full batch in canonical order; sgd/adam: one example per step, in prompt order."""
    if optimizer == "gd":
        return [canonical(examples)]
    return [[ex] for ex in examples]


def _epoch(model, opt, vocab: FactoredVocab, batches, micro_batch: int, batch_tokens: int) -> list[float]:
    """One pass over `batches`, one optimiser step each; the mean loss of each batch before its step."""
    losses = []
    for batch in batches:
        vocab.zero_grad(opt)
        losses.append(_backward(model, batch, micro_batch, batch_tokens).loss)
        vocab.step(opt)
    vocab.zero_grad(opt)
    return losses


def train(
    model, examples: Sequence[Example], optimizer: str, lr: float, epochs: int, params: list[torch.nn.Parameter],
    on_epoch: Callable[[int], None] | None = None, micro_batch: int = 0, batch_tokens: int = 1024, *,
    master_weights: bool = True,
) -> TrainResult:
    """Exactly `epochs` epochs, in place; `on_epoch(epoch)` runs after each (checkpoint evaluation).

    For experiments that fix the epoch count (order sensitivity, Dai et al.); `train_until` trains
    to convergence. The model stays in eval mode (no dropout), so two runs of the same spec are
    bitwise equal on CPU. Non-float32 parameters are stepped through float32 masters (`MasterWeights`)
    unless `master_weights` is False.
    """
    if not examples:
        raise FinetuneError("nothing to train on: the prompt set has no demonstrations")
    model.eval()
    masters = MasterWeights(params, master_weights)
    opt = make_optimizer(optimizer, masters.params, lr)
    result = TrainResult(optimizer=opt)
    batches = epoch_batches(examples, optimizer)
    with FactoredVocab(model, masters) as vocab:
        for epoch in range(1, epochs + 1):
            result.losses.append(float(np.mean(_epoch(model, opt, vocab, batches, micro_batch, batch_tokens))))
            if on_epoch is not None:
                on_epoch(epoch)
    return result


def run_status(fits: Sequence[Fit], target_loss: float, blowup: float, patience: int) -> str | None:
    """How the run stands after `len(fits) - 1` epochs, or None while it should go on.

    diverged: the loss is not finite, above `blowup` x its start, or above its start in each of the
    last `patience` epochs (one bad epoch is noise, e.g. Adam's first steps; a persistent rise is not);
    converged: at least one epoch of updates, every label the argmax and the mean loss below
    target_loss (the base model fitting its demonstrations is not a fine-tuned one).
    """
    start, last = fits[0].loss, fits[-1]
    if not np.isfinite(last.loss) or last.loss > blowup * start:
        return "diverged"
    trained = fits[1:]
    if len(trained) >= patience and all(f.loss > start for f in trained[-patience:]):
        return "diverged"
    if trained and last.learned and last.loss < target_loss:
        return "converged"
    return None


def train_until(
    model, examples: Sequence[Example], optimizer: str, lr: float, params: list[torch.nn.Parameter],
    max_epochs: int, target_loss: float, micro_batch: int = 0, batch_tokens: int = 1024, *,
    blowup: float, diverge_patience: int, master_weights: bool = True,
) -> RunResult:
    """Train in place until the demonstrations are learned, the run diverges, or max_epochs pass
    (`run_status`, with `blowup` and `diverge_patience` as its divergence rule).

    The fit is measured on all demonstrations before every epoch and after the last one. For gd the
    measuring forward is the gradient's own forward (the check costs nothing but the last forward);
    sgd/adam step at other weights during an epoch, so they measure with one extra forward.
    Non-float32 parameters train through float32 masters, as in `train`.
    """
    if not examples:
        raise FinetuneError("nothing to train on: the prompt set has no demonstrations")
    model.eval()
    masters = MasterWeights(params, master_weights)
    opt = make_optimizer(optimizer, masters.params, lr)
    full, per_demo = canonical(examples), epoch_batches(examples, optimizer)
    fits: list[Fit] = []
    with FactoredVocab(model, masters) as vocab:
        for epoch in range(max_epochs + 1):
            fused = optimizer == "gd" and epoch < max_epochs
            vocab.zero_grad(opt)
            fits.append(_backward(model, full, micro_batch, batch_tokens, grad=fused))
            status = run_status(fits, target_loss, blowup, diverge_patience)
            status = status or (None if epoch < max_epochs else "not_converged")
            if status is not None:
                break
            if fused:
                vocab.step(opt)
            else:
                _epoch(model, opt, vocab, per_demo, micro_batch, batch_tokens)
        vocab.zero_grad(opt)
    return RunResult(fits=fits, status=status)

"""Per-demonstration fine-tuning: gradient descent on the very demonstrations ICL sees.

Shen, Mishra & Khashabi (2023) compare ICL with a model fine-tuned on the same N demonstrations
(label-token cross-entropy over the whole vocabulary) and with "sub-model GD" that updates only
W_V of one middle or one deep layer; Dai et al. (2023) fine-tune only k_proj/v_proj with SGD,
batch size 1, one step per demonstration in the ICL order. This module implements all of them
on one loaded model:

* every demonstration becomes one training example: its zero-shot prompt, encoded exactly as
  `scoring` encodes a k = 0 query, with the first token of " <label word>" as the target at the
  prompt's last position; a trained model evaluated zero-shot therefore sees identical inputs;
* optimisers: "gd" (full batch, mean loss, demonstrations in a canonical uid order so any two
  orderings give bitwise-identical weights), "sgd" and "adam" (batch size 1, one step per
  demonstration in the prompt's order, so order matters, as in Dai et al.);
* parameter subsets: "all", "kv" (k_proj + v_proj of every layer), "v_mid" (v_proj of layer
  n_layers // 2) and "v_deep" (v_proj of the last layer);
* `run_grid` trains every (prompt set, optimiser, subset, lr) from the same base weights,
  restoring them from an in-memory snapshot between runs, and scores test (and dev) queries
  zero-shot at the checkpoint epochs in the shared records schema;
* `select_lr` picks one learning rate per (model, dataset, k, optimiser, subset, epoch) on a dev
  subset of the demonstration pool (never the test set); every grid point stays in the records.
"""

from __future__ import annotations

import itertools
import re
import resource
import time
import zlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from iclgd import prompts, scoring

OPTIMIZERS = ("gd", "sgd", "adam")
SUBSETS = ("all", "kv", "v_mid", "v_deep")
#: Learning rates are chosen separately for every combination of these record columns.
SELECT_BY = ("model", "dataset", "k", "optimizer", "subset", "epoch")

_ATTN_PROJ = re.compile(r"(?:^|\.)layers\.(\d+)\.self_attn\.([kv])_proj\.")


class FinetuneError(ValueError):
    """A grid, subset or dev split that cannot be run as asked."""


@dataclass(frozen=True)
class Example:
    """One training example: prompt token ids and the label token at its last position."""

    uid: int
    ids: tuple[int, ...]
    target: int


@dataclass(frozen=True)
class GridConfig:
    """The `finetune` config block; unknown keys are errors so typos do not pass silently."""

    optimizers: tuple[str, ...] = OPTIMIZERS
    subsets: tuple[str, ...] = SUBSETS
    lrs: tuple[float, ...] = (1e-4, 5e-4, 1e-3, 5e-3)
    epochs: int = 20
    eval_epochs: tuple[int, ...] = (1, 5)
    dev_size: int = 32
    seed: int = 0
    micro_batch: int = 0  # gd only: at most this many demonstrations per forward pass (0 = no cap)
    batch_tokens: int = 256  # gd only: at most this many padded tokens per forward pass

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> GridConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise FinetuneError(f"config key finetune: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        # PyYAML reads 1e-4 (no dot) as a string, so numbers are coerced here.
        casts = {"lrs": float, "eval_epochs": int, "optimizers": str, "subsets": str}
        values = {
            key: tuple(casts[key](x) for x in value) if key in casts else int(value)
            for key, value in spec.items()
        }
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        for name, allowed in (("optimizers", OPTIMIZERS), ("subsets", SUBSETS)):
            bad = set(getattr(self, name)) - set(allowed)
            if bad:
                raise FinetuneError(f"config key finetune.{name}: unknown {sorted(bad)} (known: {list(allowed)})")
        if any(lr < 0 for lr in self.lrs):
            raise FinetuneError("config key finetune.lrs: learning rates must be >= 0")
        if self.epochs < 1 or any(e < 1 for e in self.eval_epochs):
            raise FinetuneError("config keys finetune.epochs / eval_epochs: epochs start at 1")

    def checkpoints(self) -> list[int]:
        """Epochs at which to evaluate: the configured ones that are reached, plus the last."""
        return sorted({e for e in self.eval_epochs if e <= self.epochs} | {self.epochs})


@dataclass
class TrainResult:
    """Mean training loss of every epoch (before that epoch's updates) and the optimiser used."""

    losses: list[float] = field(default_factory=list)
    optimizer: torch.optim.Optimizer | None = None


@dataclass
class GridResult:
    records: pd.DataFrame  # test queries, scoring.RECORD_COLUMNS
    dev_records: pd.DataFrame  # dev queries, same schema
    runs: pd.DataFrame  # one row per training run: timings, losses, memory


# ---------------------------------------------------------------- examples


def demo_queries(prompt_set: dict[str, Any]) -> list[dict[str, Any]]:
    """The demonstrations as zero-shot queries: each demo text minus its trailing " <label word>"."""
    words = dict(zip(prompt_set["classes"], prompt_set["label_words"]))
    out = []
    for demo in prompt_set["demos"]:
        suffix = " " + words[demo["label"]]
        if not demo["text"].endswith(suffix):
            raise FinetuneError(f"demo {demo['uid']} does not end with its label word {suffix!r}")
        out.append({"uid": demo["uid"], "label": demo["label"], "query": demo["text"][: -len(suffix)]})
    return out


def encode_examples(
    tokenizer, queries: Sequence[dict[str, Any]], classes: Sequence[str], label_ids: Sequence[int]
) -> list[Example]:
    """Encode queries exactly as `scoring.score_queries` encodes a zero-shot (empty-prefix) prompt."""
    prefix = scoring.encode_prefix(tokenizer, "")
    return [
        Example(
            uid=int(q["uid"]),
            ids=tuple(prefix + scoring.encode_query(tokenizer, q["query"])),
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


# ---------------------------------------------------------------- training


def label_logits(model, batch: Sequence[Example]) -> torch.Tensor:
    """Full-vocabulary logits at each example's last token, shape (len(batch), vocab).

    Rows are right-padded without an attention mask: pads come after the answer position, so
    causal attention keeps them out of every real token, and no attention row is fully masked
    (which could put NaNs into the backward pass).
    """
    lengths = torch.tensor([len(ex.ids) for ex in batch])
    ids = torch.zeros((len(batch), int(lengths.max())), dtype=torch.long)
    for row, ex in enumerate(batch):
        ids[row, : len(ex.ids)] = torch.tensor(ex.ids)
    with scoring.head_at(model, lengths - 1):
        return model(input_ids=ids.to(model.device), use_cache=False).logits[:, 0]


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
    groups = scoring.length_batches(lengths, micro_batch or len(batch), batch_tokens)
    return [[batch[i] for i in order[start:stop]] for start, stop in groups]


def _backward(model, batch: Sequence[Example], micro_batch: int, batch_tokens: int) -> float:
    """Accumulate the gradient of the batch's mean loss, micro-batch by micro-batch."""
    total = 0.0
    for chunk in micro_batches(batch, micro_batch, batch_tokens):
        loss = label_loss(model, chunk, reduction="sum") / len(batch)
        loss.backward()
        total += loss.item()
    return total


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


def train(
    model,
    examples: Sequence[Example],
    optimizer: str,
    lr: float,
    epochs: int,
    params: list[torch.nn.Parameter],
    on_epoch: Callable[[int], None] | None = None,
    micro_batch: int = 0,
    batch_tokens: int = 1024,
) -> TrainResult:
    """Train `params` in place; `on_epoch(epoch)` runs after each epoch (for checkpoint evaluation).

    The model stays in eval mode (no dropout), so two runs of the same spec are bitwise equal on CPU.
    """
    if not examples:
        raise FinetuneError("nothing to train on: the prompt set has no demonstrations")
    model.eval()
    opt = make_optimizer(optimizer, params, lr)
    result = TrainResult(optimizer=opt)
    batches = epoch_batches(examples, optimizer)
    for epoch in range(1, epochs + 1):
        losses = []
        for batch in batches:
            opt.zero_grad(set_to_none=True)
            losses.append(_backward(model, batch, micro_batch, batch_tokens))
            opt.step()
        result.losses.append(float(np.mean(losses)))
        if on_epoch is not None:
            on_epoch(epoch)
    opt.zero_grad(set_to_none=True)
    return result


# ---------------------------------------------------------------- evaluation and grid


def evaluate(
    model, tokenizer, prompt_set: dict[str, Any], queries: Sequence[dict[str, Any]], label_ids: list[int],
    tags: dict[str, Any], batch_size: int = 16, batch_tokens: int = 1024,
) -> pd.DataFrame:
    """Zero-shot records of `queries` (the test queries, or dev ones) under the prompt set's identity."""
    texts = [q["query"] for q in queries]
    scores = scoring.score_queries(model, tokenizer, "", texts, label_ids, batch_size, batch_tokens=batch_tokens)
    return scoring.records_frame(tokenizer, {**prompt_set, "queries": list(queries)}, scores, label_ids, tags)


def check_dev(prompt_set: dict[str, Any], dev: Sequence[dict[str, Any]]) -> None:
    """The dev split must share no uid with the prompt set's demonstrations or test queries."""
    used = {d["uid"] for d in prompt_set["demos"]} | {q["uid"] for q in prompt_set["queries"]}
    clash = used & {d["uid"] for d in dev}
    if clash:
        raise FinetuneError(f"dev examples overlap the demonstrations or test queries (uids {sorted(clash)[:5]})")


def run_grid(
    model,
    tokenizer,
    prompt_sets: Sequence[dict[str, Any]],
    grid: GridConfig,
    dev: Sequence[dict[str, Any]] | None = None,
    tags: dict[str, Any] | None = None,
    batch_size: int = 16,
    batch_tokens: int = 1024,
    progress: bool = True,
) -> GridResult:
    """Every (prompt set with k >= 1, optimiser, subset, lr) from the same base weights.

    The union of trainable parameters is snapshotted once; each run trains, is scored at the
    checkpoint epochs, and gets its subset restored bitwise in memory before the next run.
    Afterwards the model holds its base weights with every parameter frozen.
    """
    grid.validate()
    sets = [ps for ps in prompt_sets if ps["k"] >= 1]
    for ps in sets:
        check_dev(ps, dev or [])
    model.eval()
    names = {s: select_parameters(model, s) for s in grid.subsets}
    base = snapshot(model, sorted(set().union(*names.values())))
    scorer = _Scorer(model, tokenizer, dev or [], grid.checkpoints(), batch_size, batch_tokens)
    runs = []
    combos = list(itertools.product(sets, grid.optimizers, grid.subsets, grid.lrs))
    for ps, optimizer, subset, lr in tqdm(combos, desc="finetune runs", disable=not progress):
        run_tags = {**(tags or {}), "method": "finetune", "optimizer": optimizer, "subset": subset, "lr": lr}
        try:
            runs.append(_one_run(model, tokenizer, ps, grid, names[subset], scorer, run_tags))
        finally:
            restore(model, base, names[subset])
    freeze_except(model, [])
    return GridResult(_concat(scorer.test), _concat(scorer.dev_frames), pd.DataFrame(runs))


class _Scorer:
    """Collects zero-shot records of test and dev queries at the checkpoint epochs of each run."""

    def __init__(self, model, tokenizer, dev, checkpoints, batch_size, batch_tokens):
        self.model, self.tokenizer, self.dev, self.checkpoints = model, tokenizer, dev, set(checkpoints)
        self.batching = (batch_size, batch_tokens)
        self.test: list[pd.DataFrame] = []
        self.dev_frames: list[pd.DataFrame] = []
        self.seconds = 0.0

    def __call__(self, prompt_set, label_ids, tags, epoch: int) -> None:
        if epoch not in self.checkpoints:
            return
        started = time.perf_counter()
        tags = {**tags, "epoch": epoch}
        args = (self.model, self.tokenizer, prompt_set)
        self.test.append(evaluate(*args, prompt_set["queries"], label_ids, tags, *self.batching))
        if self.dev:
            self.dev_frames.append(evaluate(*args, self.dev, label_ids, tags, *self.batching))
        self.seconds += time.perf_counter() - started


def _one_run(model, tokenizer, ps, grid: GridConfig, names, scorer: _Scorer, tags) -> dict[str, Any]:
    """Train one grid point (weights are restored by the caller) and describe it for the runs table."""
    label_ids = scoring.label_token_ids(tokenizer, ps["label_words"])
    examples = encode_examples(tokenizer, demo_queries(ps), ps["classes"], label_ids)
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(model.device)
    eval_before = scorer.seconds
    started = time.perf_counter()
    params = freeze_except(model, names)
    result = train(
        model, examples, tags["optimizer"], tags["lr"], grid.epochs, params,
        lambda epoch: scorer(ps, label_ids, tags, epoch), grid.micro_batch, grid.batch_tokens,
    )
    seconds = time.perf_counter() - started
    eval_seconds = scorer.seconds - eval_before
    row = {
        "dataset": ps["dataset"], "k": ps["k"], "seed": ps["seed"], "order": ps.get("order", 0),
        "optimizer": tags["optimizer"], "subset": tags["subset"], "lr": tags["lr"], "epochs": grid.epochs,
        "n_trainable": int(sum(p.numel() for p in params)),
        "first_loss": result.losses[0], "last_loss": result.losses[-1],
        "diverged": bool(not np.isfinite(result.losses).all()),
        "seconds": seconds, "train_seconds": seconds - eval_seconds, "eval_seconds": eval_seconds,
    }
    if cuda:
        row["cuda_peak_mb"] = torch.cuda.max_memory_allocated(model.device) / 2**20
    return row


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=scoring.RECORD_COLUMNS)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- learning-rate selection


def dev_examples(
    train: pd.DataFrame, template: str, exclude: Iterable[int], size: int, seed: int, dataset: str = ""
) -> list[dict[str, Any]]:
    """A seeded dev subset of the demonstration pool (train split) that avoids `exclude` uids.

    Pass the uids of every demonstration (and, defensively, every test query) of the job's prompt
    sets, so one dev split serves all of them and lr choices are comparable across seeds.
    """
    banned = {int(u) for u in exclude}
    pool = train[~train["uid"].astype(int).isin(banned)].sort_values("uid", kind="stable")
    if size > len(pool):
        raise FinetuneError(f"dev_size {size} exceeds the {len(pool)} train rows left after excluding demonstrations")
    rng = np.random.default_rng([zlib.crc32(b"dev"), zlib.crc32(dataset.encode()), seed])
    rows = pool.iloc[np.sort(rng.choice(len(pool), size=size, replace=False))]
    return [
        {"uid": int(r["uid"]), "label": r["label"], "query": prompts.render_query(template, r)}
        for r in rows.to_dict("records")
    ]


def dev_accuracy(dev_records: pd.DataFrame) -> pd.DataFrame:
    """Dev accuracy per run and checkpoint; a query whose label log-probs are not finite is wrong."""
    finite = np.array([np.isfinite(v).all() for v in dev_records["label_logprobs"]], dtype=bool)
    frame = dev_records.assign(
        correct=(dev_records["pred_index"] == dev_records["label_index"]) & finite,
        full=dev_records["full_correct"].astype(bool) & finite,
    )
    keys = [*SELECT_BY, "seed", "order", "lr"]
    return (
        frame.groupby(keys, sort=True)
        .agg(accuracy=("correct", "mean"), full_accuracy=("full", "mean"), n_dev=("uid", "size"))
        .reset_index()
    )


def select_lr(table: pd.DataFrame, by: Sequence[str] = SELECT_BY, metric: str = "accuracy") -> pd.DataFrame:
    """The selection rule: per `by` group, the lr with the highest dev `metric` averaged over seeds
    and orders; ties go to the smaller lr (the smaller step from the base model).

    `table` has one row per (group, seed/order, lr), as `dev_accuracy` returns. The result has one
    row per group: `by`, `lr`, `dev_<metric>` and `n_lrs` (how many lrs competed).
    """
    mean = table.groupby([*by, "lr"], sort=True)[metric].mean().reset_index()
    counts = mean.groupby(list(by))["lr"].size().rename("n_lrs").reset_index()
    ranked = mean.sort_values([*by, metric, "lr"], ascending=[True] * len(by) + [False, True], kind="stable")
    best = ranked.groupby(list(by), sort=True).head(1).merge(counts, on=list(by))
    return best.rename(columns={metric: f"dev_{metric}"}).reset_index(drop=True)


# ---------------------------------------------------------------- resources


def peak_memory(device: str | torch.device | None = None) -> dict[str, float]:
    """Peak resident memory of this process (MiB) and, on CUDA, the peak allocated GPU memory."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    device = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (device is None or device.type == "cuda"):
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def grid_summary(grid: GridConfig, result: GridResult, selected: pd.DataFrame, device=None) -> dict[str, Any]:
    """Small JSON-able account of a job: timings per run, memory, and the chosen learning rates."""
    runs = result.runs
    seconds = runs["seconds"] if len(runs) else pd.Series(dtype=float)
    return {
        "grid": asdict(grid),
        "n_runs": int(len(runs)),
        "seconds_per_run": {
            "mean": float(seconds.mean()) if len(runs) else None,
            "median": float(seconds.median()) if len(runs) else None,
            "max": float(seconds.max()) if len(runs) else None,
            "total": float(seconds.sum()),
        },
        "n_diverged": int(runs["diverged"].sum()) if len(runs) else 0,
        "memory": peak_memory(device),
        "selected_lrs": selected.to_dict("records"),
        "runs": runs.to_dict("records"),
    }

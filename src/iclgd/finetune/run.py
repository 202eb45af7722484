"""The ICL-vs-GD fine-tuning grid (Shen et al. Table 1): every prompt set fine-tuned on its own
demonstrations under every (optimiser, subset, lr), the lr chosen on dev.

* `run_grid` trains every (prompt set, optimiser, subset, lr) from the same base weights,
  restoring them between runs; every run is described in the runs table (status, epochs, losses)
  and the converged ones are scored zero-shot on test and dev queries in the shared records schema;
* `select_lr` picks one learning rate per (model, prompt set, optimiser, subset) among the
  converged runs: the lowest mean dev label loss on a class-balanced dev subset of the demonstration
  pool (never the test set). Rates run in ascending order and a converged run is scored on the test
  queries only if its dev loss beats every smaller converged rate's, so the run the rule selects
  always has test records and the others mostly cost no test evaluation.
"""

from __future__ import annotations

import itertools
import resource
import time
import zlib
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from iclgd.core import forward, prompts
from iclgd.core.training import (
    STATUSES, FinetuneError, RunResult, demo_queries, encode_examples, select_parameters, snapshot, train_until, trainable,
)


#: Learning rates are chosen separately for every combination of these record columns: each fine-tuned
#: twin of a prompt set (dataset, k, demonstration seed, order) gets its own rate.
SELECT_BY = ("model", "dataset", "k", "seed", "order", "optimizer", "subset")


@dataclass(frozen=True)
class GridConfig:
    """The grid's part of the validated `finetune` config block (config/schema.yaml holds the defaults,
    the descriptions and the range checks); pipeline keys such as `models` are ignored here."""

    optimizers: tuple[str, ...]
    subsets: tuple[str, ...]
    lrs: tuple[float, ...]
    max_epochs: int  # a run that has not learned its demonstrations by then is "not_converged"
    target_loss: float  # converged: mean label loss below this and every label the argmax
    blowup: float  # diverged at once: loss above blowup x its start
    diverge_patience: int  # diverged: loss above its start for this many epochs in a row
    dev_size: int
    seed: int
    micro_batch: int  # gd only: at most this many demonstrations per forward pass (0 = no cap)
    batch_tokens: int  # gd only: at most this many padded tokens per forward pass
    skip: tuple[tuple[str, str], ...] = ()  # (optimizer, subset) left out (finetune.skip: cannot fit the device)

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> GridConfig:
        """The grid from a validated block, numbers coerced to the types the runs table stores (YAML
        reads a rate of 1 as an int; the table must show 1.0)."""
        casts = {"lrs": float, "optimizers": str, "subsets": str}
        values = {
            key: tuple(casts[key](x) for x in value) if key in casts else (float if key in _FLOATS else int)(value)
            for key, value in ((f.name, block[f.name]) for f in fields(cls) if f.name != "skip")
        }
        return cls(**values, skip=tuple((str(o), str(s)) for o, s in block.get("skip", ())))


_FLOATS = ("target_loss", "blowup")


@dataclass
class GridResult:
    records: pd.DataFrame  # test queries of the converged runs that could be selected, forward.RECORD_COLUMNS
    dev_records: pd.DataFrame  # dev queries of the converged runs, same schema
    runs: pd.DataFrame  # one row per training run: status, epochs, losses, timings


# ---------------------------------------------------------------- evaluation and grid


def evaluate(
    model, tokenizer, prompt_set: dict[str, Any], queries: Sequence[dict[str, Any]], label_ids: list[int],
    tags: dict[str, Any], batch_size: int, batch_tokens: int,
) -> pd.DataFrame:
    """Zero-shot records of `queries` (the test queries, or dev ones) under the prompt set's identity."""
    texts = [q["query"] for q in queries]
    scores = forward.score_queries(model, tokenizer, "", texts, label_ids, batch_size, batch_tokens=batch_tokens)
    return forward.records_frame(tokenizer, {**prompt_set, "queries": list(queries)}, scores, label_ids, tags)


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
    *,
    batch_size: int,
    batch_tokens: int,
    progress: bool = True,
) -> GridResult:
    """Every (prompt set with k >= 1, optimiser, subset, lr) from the same base weights.

    The union of trainable parameters is snapshotted once; each run trains to convergence (or gives
    up), is scored zero-shot on the dev queries if it converged (and on the test queries if it is
    still a contender for selection), and gets its subset restored bitwise in memory before the next
    run. Unconverged runs are not scored: nothing compares them.
    Afterwards the model holds its base weights with every parameter frozen.
    """
    sets = [ps for ps in prompt_sets if ps["k"] >= 1]
    for ps in sets:
        check_dev(ps, dev or [])
    model.eval()
    names = {s: select_parameters(model, s) for s in grid.subsets}
    base = snapshot(model, sorted(set().union(*names.values())))
    test: list[pd.DataFrame] = []
    dev_frames: list[pd.DataFrame] = []
    runs = []
    best: dict[tuple, float] = {}  # lowest dev loss so far per (prompt set, optimizer, subset)
    combos = [c for c in itertools.product(range(len(sets)), grid.optimizers, grid.subsets, sorted(grid.lrs))
              if (c[1], c[2]) not in grid.skip]
    bar = tqdm(combos, desc="finetune runs", disable=not progress)
    for index, optimizer, subset, lr in bar:
        ps = sets[index]
        run_tags = {**(tags or {}), "method": "finetune", "optimizer": optimizer, "subset": subset, "lr": lr}
        with trainable(model, names[subset], base) as params:
            row, result = _one_run(model, tokenizer, ps, grid, params, run_tags)
            if result.status == "converged":
                scored = {**run_tags, "epoch": result.epochs}
                dev_frame, test_frame, row["eval_seconds"] = _score_run(
                    model, tokenizer, ps, dev or [], scored, best, (index, optimizer, subset), (batch_size, batch_tokens)
                )
                dev_frames += [] if dev_frame is None else [dev_frame]
                test += [] if test_frame is None else [test_frame]
                row["test_scored"] = test_frame is not None
            runs.append(row)
            bar.set_postfix_str(f"k={ps['k']} lr={lr:g}: {result.status} after {result.epochs} epochs")
    return GridResult(_concat(test), _concat(dev_frames), pd.DataFrame(runs, columns=RUN_COLUMNS))


def _score_run(model, tokenizer, ps, dev, tags, best: dict, key: tuple, batching) -> tuple:
    """(dev records, test records or None, seconds) of a converged run. Rates run in ascending order
    and ties go to the smaller one, so only a run whose dev loss (`select_lr`'s criterion) is below
    every earlier rate's can be selected: the others skip the test queries. Without a dev split every
    run is scored on test."""
    started = time.perf_counter()
    label_ids = forward.label_token_ids(tokenizer, ps["label_words"])
    score = lambda queries: evaluate(model, tokenizer, ps, queries, label_ids, tags, *batching)  # noqa: E731
    dev_frame, contender = None, True
    if dev:
        dev_frame = score(dev)
        loss = float(dev_scores(dev_frame)[SELECT_METRIC].iloc[0])
        contender = key not in best or loss < best[key]
        best[key] = loss if contender else best[key]
    test_frame = score(ps["queries"]) if contender else None
    return dev_frame, test_frame, time.perf_counter() - started


#: The runs table: one row per training run.
RUN_COLUMNS = [
    "model", "dataset", "k", "seed", "order", "optimizer", "subset", "lr", "max_epochs", "target_loss",
    "blowup", "diverge_patience", "status", "epochs", "first_loss", "final_loss", "learned", "losses", "n_trainable",
    "test_scored", "train_seconds", "eval_seconds", "cuda_peak_mb",
]


def _one_run(model, tokenizer, ps, grid: GridConfig, params, tags) -> tuple[dict[str, Any], RunResult]:
    """Train one grid point (`params`: the trainable ones; the caller restores them) and describe it
    for the runs table."""
    label_ids = forward.label_token_ids(tokenizer, ps["label_words"])
    examples = encode_examples(tokenizer, demo_queries(ps), ps["classes"], label_ids)
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(model.device)
    started = time.perf_counter()
    result = train_until(
        model, examples, tags["optimizer"], tags["lr"], params, grid.max_epochs, grid.target_loss,
        grid.micro_batch, grid.batch_tokens, blowup=grid.blowup, diverge_patience=grid.diverge_patience,
    )
    row = {
        "model": tags.get("model", ""), "dataset": ps["dataset"], "k": ps["k"], "seed": ps["seed"],
        "order": ps.get("order", 0), "optimizer": tags["optimizer"], "subset": tags["subset"], "lr": tags["lr"],
        "max_epochs": grid.max_epochs, "target_loss": grid.target_loss, "blowup": grid.blowup,
        "diverge_patience": grid.diverge_patience,
        "status": result.status, "epochs": result.epochs,
        "first_loss": result.fits[0].loss, "final_loss": result.fits[-1].loss, "learned": result.fits[-1].learned,
        "losses": " ".join(f"{f.loss:.4g}" for f in result.fits),
        "n_trainable": int(sum(p.numel() for p in params)),
        "test_scored": False, "train_seconds": time.perf_counter() - started, "eval_seconds": 0.0,
        "cuda_peak_mb": torch.cuda.max_memory_allocated(model.device) / 2**20 if cuda else float("nan"),
    }
    return row, result


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=forward.RECORD_COLUMNS)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- learning-rate selection


def dev_examples(
    train: pd.DataFrame, template: str, exclude: Iterable[int], size: int, seed: int, dataset: str = ""
) -> list[dict[str, Any]]:
    """A seeded, class-balanced dev subset of the demonstration pool (train split) that avoids `exclude`.

    Classes are visited round-robin as for the demonstrations (`prompts.sample_demos`), so no class
    dominates the dev loss that picks the learning rate. Pass the uids of every demonstration (and,
    defensively, every test query) of the job's prompt sets, so one dev split serves all of them and
    lr choices are comparable across seeds. Returned in uid order.
    """
    banned = {int(u) for u in exclude}
    pool = train[~train["uid"].astype(int).isin(banned)].sort_values("uid", kind="stable").reset_index(drop=True)
    if size > len(pool):
        raise FinetuneError(f"dev_size {size} exceeds the {len(pool)} train rows left after excluding demonstrations")
    rng = np.random.default_rng([zlib.crc32(b"dev"), zlib.crc32(dataset.encode()), seed])
    try:
        rows = prompts.sample_demos(pool, size, rng, balanced=True).sort_values("uid", kind="stable")
    except prompts.PromptError as err:
        raise FinetuneError(f"no class-balanced dev split of {size}: {err}") from err
    return [
        {"uid": int(r["uid"]), "label": r["label"], "query": prompts.render_query(template, r)}
        for r in rows.to_dict("records")
    ]


#: The dev score `select_lr` ranks by (lower is better), and the early test-skip in `run_grid` too.
SELECT_METRIC = "loss"
#: Dev scores per run, as `dev_scores` returns them; `select_lr` carries them all to the chosen row.
DEV_SCORES = ("loss", "accuracy", "full_accuracy")


def gold_loss(label_logprobs: Sequence[np.ndarray], label_index: Sequence[int]) -> np.ndarray:
    """-log p(gold label token) over the full vocabulary (the training loss, on held-out queries);
    a non-finite score is an infinite loss, the worst possible."""
    loss = np.array([-float(lp[int(i)]) for lp, i in zip(label_logprobs, label_index)], dtype=float)
    return np.where(np.isfinite(loss), loss, np.inf)


def dev_scores(dev_records: pd.DataFrame) -> pd.DataFrame:
    """Per run (only converged runs have dev records): mean dev label loss (`gold_loss`: full-vocabulary
    cross-entropy of the gold label's first token, nats), label-restricted and full-vocabulary accuracy;
    non-finite label log-probs count as wrong and as an infinite loss."""
    finite = np.array([np.isfinite(v).all() for v in dev_records["label_logprobs"]], dtype=bool)
    frame = dev_records.assign(
        correct=(dev_records["pred_index"] == dev_records["label_index"]) & finite,
        full=dev_records["full_correct"].astype(bool) & finite,
        gold=gold_loss(dev_records["label_logprobs"], dev_records["label_index"]),
    )
    keys = [*SELECT_BY, "lr"]
    return (
        frame.groupby(keys, sort=True)
        .agg(loss=("gold", "mean"), accuracy=("correct", "mean"), full_accuracy=("full", "mean"), n_dev=("uid", "size"))
        .reset_index()
    )


def select_lr(
    table: pd.DataFrame, by: Sequence[str] = SELECT_BY, metric: str = SELECT_METRIC, higher_is_better: bool = False
) -> pd.DataFrame:
    """The selection rule: per `by` group, the lr with the lowest dev `metric` (the mean dev label loss;
    the highest with higher_is_better), averaged over any rows the group has (e.g. seeds when `by`
    omits them); ties go to the smaller lr (the smaller step from the base model). The loss, unlike
    accuracy on a few dev queries, rarely ties and still ranks runs that all get every query right.
    Only converged runs are scored, so only they compete; a group where no lr converged has no row.

    `table` has one row per (group, lr), as `dev_scores` returns. The result has one row per group:
    `by`, `lr`, `dev_<score>` for each of DEV_SCORES in `table` (the chosen lr's) and `n_lrs`.
    """
    scores = [c for c in dict.fromkeys([metric, *DEV_SCORES]) if c in table.columns]
    mean = table.groupby([*by, "lr"], sort=True)[scores].mean().reset_index()
    counts = mean.groupby(list(by))["lr"].size().rename("n_lrs").reset_index()
    order = [True] * len(by) + [not higher_is_better, True]
    ranked = mean.sort_values([*by, metric, "lr"], ascending=order, kind="stable")
    best = ranked.groupby(list(by), sort=True).head(1).merge(counts, on=list(by))
    return best.rename(columns={c: f"dev_{c}" for c in scores}).reset_index(drop=True)


# ---------------------------------------------------------------- resources


def peak_memory(device: str | torch.device | None = None) -> dict[str, float]:
    """Peak resident memory of this process (MiB) and, on CUDA, the peak allocated GPU memory."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    device = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (device is None or device.type == "cuda"):
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def convergence(runs: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """One row per `SELECT_BY` setting (model, prompt set, optimizer, subset): how many lrs converged, diverged
    or ran out of epochs, whether the setting can be compared (some lr converged), and the selected
    run's lr, epochs, final demonstration loss and dev scores."""
    keys = list(SELECT_BY)
    counts = pd.crosstab([runs[k] for k in keys], runs["status"]).reindex(columns=list(STATUSES), fill_value=0)
    out = counts.rename(columns={s: f"n_{s}" for s in STATUSES}).reset_index()
    out["n_lrs"] = out[[f"n_{s}" for s in STATUSES]].sum(axis=1)
    out["converged"] = out["n_converged"] > 0
    dev = [c for c in selected.columns if c.startswith("dev_")]
    chosen = selected[[*SELECT_BY, "lr", *dev]].merge(runs, on=[*SELECT_BY, "lr"], how="inner")
    chosen = chosen[chosen["status"] == "converged"][[*keys, "lr", "epochs", "final_loss", *dev]]
    return out.merge(chosen, on=keys, how="left").sort_values(keys, ignore_index=True)


def grid_summary(grid: GridConfig, result: GridResult, selected: pd.DataFrame, device=None) -> dict[str, Any]:
    """Small JSON-able account of a job: timings per run, statuses, memory, and the chosen learning rates."""
    runs = result.runs
    seconds = runs["train_seconds"] + runs["eval_seconds"]
    stat = lambda f: float(f(seconds)) if len(runs) else None  # noqa: E731
    return {
        "grid": asdict(grid),
        "n_runs": int(len(runs)),
        "status": {s: int((runs["status"] == s).sum()) for s in STATUSES},
        "seconds_per_run": {"mean": stat(np.mean), "median": stat(np.median), "max": stat(np.max),
                            "total": float(seconds.sum())},
        "train_seconds": float(runs["train_seconds"].sum()),
        "eval_seconds": float(runs["eval_seconds"].sum()),
        "memory": peak_memory(device),
        "selected_lrs": selected.to_dict("records"),
        "runs": runs.to_dict("records"),
    }

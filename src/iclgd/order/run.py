"""Order sensitivity: Shen et al.'s argument that ICL is not full-batch gradient descent.

Shen, Mishra & Khashabi (2023, Theorem 1) note that if ICL on demonstrations S_1..S_N were
equivalent to training on them, reordering the demonstrations would have to change ICL's output
exactly as it changes the trained model's. Full-batch GD is permutation-invariant, so its
output cannot move; ICL's does. Their experiment (LLaMA-7B, AGNews, 8 demonstrations, 10 random
orderings) tracks the spread of the output across orderings for ICL and for fine-tuning with GD,
SGD and Adam over epochs. This module runs that experiment on one prompt set:

* R orderings of its k demonstrations (seeded, the identity first, all distinct);
* ICL: the prompt re-rendered in each ordering (the stored demo texts joined with
  `prompts.DEMO_SEPARATOR`; the identity must reproduce the stored prefix byte for byte, so the
  text is exactly what the ICL stage scores), scored with `forward.score_queries`;
* fine-tuning per optimizer and ordering with `training.train` (gd: one canonical full batch,
  so every ordering gives bitwise-identical weights; sgd/adam: batch 1 in prompt order), scoring
  the queries zero-shot every `eval_every` epochs, base weights restored in memory between runs;
* spreads across orderings per test query (definitions in `PER_QUERY`), the label ones through
  `order_spread.order_spread_examples`, the full-vocabulary ones from a running (Welford) mean and
  variance over orderings kept in memory (queries x vocab per checkpoint), never on disk.

All standard deviations are population ones (ddof = 0) over the R orderings run, as in
`order_spread.order_spread`.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from iclgd.core import forward, prompts, stats, training
from iclgd.order.spread import Welford, order_spread_examples

#: Per-query spread columns and what each one is (p_o: ordering o's output for that query).
PER_QUERY = {
    "label": "mean over classes c of sd_o p_o(c), p_o renormalised over the label words",
    "vocab": "mean over all V vocabulary tokens t of sd_o p_o(t), the full next-token distribution",
    "vocab_l2": "sqrt(sum over tokens t of var_o p_o(t)): RMS L2 distance of p_o from the mean distribution",
    "vocab_label": "mean over classes c of sd_o p_o(c), p_o the full-vocabulary probability of c's token",
    "top1": "sd_o of the full-vocabulary top-1 probability",
}
#: order_spread.order_spread_examples column -> statistic name above.
_FROM_COMPARE = {"label_std": "label", "vocab_label_std": "vocab_label", "top1_std": "top1"}
#: Columns identifying one curve point (method, optimizer, epoch) of one run.
POINT = ["model", "dataset", "method", "k", "seed", "optimizer", "subset", "lr", "epoch"]


class OrderError(ValueError):
    """A setting the order experiment cannot run as configured (names the config key)."""


@dataclass(frozen=True)
class OrderConfig:
    """The experiment's part of the validated `order` config block (config/schema.yaml holds the
    defaults, the descriptions and the range checks); pipeline keys (models, datasets) are ignored."""

    n_demos: int
    demo_seed: int
    orderings: int
    optimizers: tuple[str, ...]
    lrs: dict[str, float]
    subset: str
    epochs: int
    eval_every: int
    n_queries: int | None
    seed: int
    batch_tokens: int

    @classmethod
    def from_dict(cls, block: Mapping[str, Any]) -> OrderConfig:
        values: dict[str, Any] = {f.name: block[f.name] for f in fields(cls)}
        values["optimizers"] = tuple(str(o) for o in values["optimizers"])
        values["lrs"] = {str(o): float(lr) for o, lr in values["lrs"].items()}  # YAML reads a rate of 1 as an int
        for key in ("n_demos", "demo_seed", "orderings", "epochs", "eval_every", "seed", "batch_tokens"):
            values[key] = int(values[key])
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """What the schema cannot say: every optimizer run has a rate, and n_demos! orderings exist."""
        for opt in self.optimizers:
            if opt not in self.lrs:
                raise OrderError(f"config key order.lrs.{opt}: no learning rate for optimizer {opt!r}")
        if self.orderings > math.factorial(self.n_demos):
            raise OrderError(f"config key order.orderings: need orderings <= n_demos! = {math.factorial(self.n_demos)}")

    def checkpoints(self) -> list[int]:
        """Epochs scored: every `eval_every`-th one, and always the last."""
        return sorted(set(range(self.eval_every, self.epochs + 1, self.eval_every)) | {self.epochs})


@dataclass
class OrderResult:
    records: pd.DataFrame  # one row per query x ordering x curve point (forward.RECORD_COLUMNS)
    per_query: pd.DataFrame  # POINT + uid + n_orders + one column per PER_QUERY statistic
    runs: pd.DataFrame  # one row per (optimizer, ordering) training run: losses, seconds


# ---------------------------------------------------------------- inputs


def _rng(purpose: str, dataset: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(purpose.encode()), zlib.crc32(dataset.encode()), seed])


def orderings(k: int, n: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """n distinct permutations of range(k), the identity first (so ordering 0 is the stored prompt)."""
    if not 1 <= n <= math.factorial(k):
        raise OrderError(f"cannot draw {n} distinct orderings of {k} demonstrations (k! = {math.factorial(k)})")
    out = [tuple(range(k))]
    seen = set(out)
    while len(out) < n:
        perm = tuple(int(i) for i in rng.permutation(k))
        if perm not in seen:
            seen.add(perm)
            out.append(perm)
    return out


def render_prefix(demos: Sequence[dict[str, Any]]) -> str:
    """The ICL prefix of demonstrations in this order, as `prompts.build_prompt_sets` renders it."""
    return "".join(d["text"] + prompts.DEMO_SEPARATOR for d in demos)


def reorder(prompt_set: dict[str, Any], perm: Sequence[int], order_id: int) -> dict[str, Any]:
    """The prompt set with its demonstrations in order `perm` (prefix re-rendered, `order` = order_id)."""
    if sorted(perm) != list(range(len(prompt_set["demos"]))):
        raise OrderError(f"{list(perm)} is not a permutation of the {len(prompt_set['demos'])} demonstrations")
    if render_prefix(prompt_set["demos"]) != prompt_set["prefix"]:
        raise OrderError("the prompt set's prefix is not its demonstrations joined by prompts.DEMO_SEPARATOR; "
                         "re-rendering orderings would not reproduce the ICL text")
    demos = [prompt_set["demos"][i] for i in perm]
    return {**prompt_set, "order": int(order_id), "demos": demos, "prefix": render_prefix(demos)}


def pick_prompt_set(sets: Sequence[dict[str, Any]], k: int, seed: int) -> dict[str, Any]:
    """The stored prompt set with k demonstrations and demonstration seed `seed`, in its sampled order
    (order 0; permuted copies the ICL stage may also store are skipped)."""
    found = [ps for ps in sets if ps["k"] == k and ps["seed"] == seed and ps.get("order", 0) == 0]
    if len(found) != 1:
        have = sorted({(ps["k"], ps["seed"]) for ps in sets})
        raise OrderError(f"config keys order.n_demos / order.demo_seed: {len(found)} prompt sets with k={k}, "
                         f"seed={seed} (have (k, seed) {have}; add them to icl.n_demos / icl.demo_seeds)")
    return found[0]


def pick_queries(prompt_set: dict[str, Any], n: int | None, seed: int) -> list[dict[str, Any]]:
    """A seeded subset of n test queries, in their stored order (n=None: all of them)."""
    queries = prompt_set["queries"]
    if n is None:
        return list(queries)
    if n > len(queries):
        raise OrderError(f"config key order.n_queries: {n} > the {len(queries)} test queries of {prompt_set['dataset']}")
    keep = np.sort(_rng("order-queries", prompt_set["dataset"], seed).choice(len(queries), size=n, replace=False))
    return [queries[i] for i in keep]


# ---------------------------------------------------------------- the experiment


class _Point:
    """Records and the full-vocabulary accumulator of one curve point, across orderings."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []
        self.vocab = Welford()


class _Scorer:
    """Scores the picked queries and collects each curve point's records and full-vocabulary spread until a
    flush, so that only one optimizer's accumulators are alive at a time."""

    def __init__(self, model, tokenizer, queries: list[dict[str, Any]], label_ids, batching: tuple[int, int]) -> None:
        self.model, self.tokenizer, self.queries = model, tokenizer, queries
        self.label_ids, self.batching = label_ids, batching
        self.points: dict[tuple[str, str, float, int], _Point] = {}
        self.per_query: list[pd.DataFrame] = []

    def add(self, key: tuple[str, str, float, int], prompt_set: dict[str, Any], prefix: str,
            point_tags: dict[str, Any]) -> None:
        """Score the queries behind `prefix` (full next-token distributions too) into curve point `key`."""
        texts = [query["query"] for query in self.queries]
        scores = forward.score_queries(self.model, self.tokenizer, prefix, texts, self.label_ids, self.batching[0],
                                       batch_tokens=self.batching[1], full=True)
        probs = scores.pop("probs")
        frame = forward.records_frame(self.tokenizer, {**prompt_set, "queries": list(self.queries)}, scores,
                                      self.label_ids, point_tags)
        point = self.points.setdefault(key, _Point())
        point.frames.append(frame)
        point.vocab.update(probs)

    def flush(self) -> list[pd.DataFrame]:
        """Finish the collected curve points: keep their per-query spreads, return their records."""
        done = [_point_frame(point) for point in self.points.values()]
        self.per_query.extend(spreads for spreads, _ in done)
        self.points.clear()
        return [records for _, records in done]


def run_order(
    model,
    tokenizer,
    prompt_set: dict[str, Any],
    cfg: OrderConfig,
    tags: dict[str, Any] | None = None,
    *,
    batch_size: int,
    batch_tokens: int,
    progress: bool = True,
) -> OrderResult:
    """ICL and every optimizer's fine-tuning under each ordering; spreads per query and curve point.

    Loops optimizer-outer so only one optimizer's accumulators (checkpoints x queries x vocab x 2
    float64) are alive at a time. Afterwards the model holds its base weights, all frozen.
    """
    cfg.validate()
    if prompt_set["k"] != cfg.n_demos:
        raise OrderError(f"config key order.n_demos: prompt set has k={prompt_set['k']}, expected {cfg.n_demos}")
    tags = dict(tags or {})
    model.eval()
    perms = orderings(cfg.n_demos, cfg.orderings, _rng("order-perms", prompt_set["dataset"], cfg.seed))
    sets = [reorder(prompt_set, perm, order_id) for order_id, perm in enumerate(perms)]
    queries = pick_queries(prompt_set, cfg.n_queries, cfg.seed)
    label_ids = forward.label_token_ids(tokenizer, prompt_set["label_words"])
    scorer = _Scorer(model, tokenizer, queries, label_ids, (batch_size, batch_tokens))
    bar = tqdm(total=len(sets) * (1 + len(cfg.optimizers)), desc="order runs", disable=not progress)
    records = _icl_records(scorer, sets, tags, bar)
    finetune_records, runs = _finetune_records(scorer, sets, cfg, tags, bar)
    bar.close()
    return OrderResult(pd.concat(records + finetune_records, ignore_index=True),
                       pd.concat(scorer.per_query, ignore_index=True), pd.DataFrame(runs))


def _icl_records(scorer: _Scorer, sets: list[dict[str, Any]], tags: dict[str, Any], bar) -> list[pd.DataFrame]:
    """ICL under every ordering: one curve point, each ordering scored behind its own prefix."""
    for prompt_set in sets:
        scorer.add(("icl", "none", 0.0, 0), prompt_set, prompt_set["prefix"], {**tags, "method": "icl"})
        bar.update()
    return scorer.flush()


def _finetune_records(scorer: _Scorer, sets: list[dict[str, Any]], cfg: OrderConfig, tags: dict[str, Any], bar
                      ) -> tuple[list[pd.DataFrame], list[dict[str, Any]]]:
    """Every optimizer's fine-tuning on every ordering, each from the base weights: the records per
    optimizer (flushed before the next one starts) and one row per training run."""
    names = training.select_parameters(scorer.model, cfg.subset)
    base = training.snapshot(scorer.model, names)
    records: list[pd.DataFrame] = []
    runs = []
    for optimizer in cfg.optimizers:
        for prompt_set in sets:
            runs.append(_finetune_run(scorer, prompt_set, cfg, optimizer, tags, (names, base)))
            bar.update()
        records += scorer.flush()
    return records, runs


def _finetune_run(scorer: _Scorer, prompt_set: dict[str, Any], cfg: OrderConfig, optimizer: str,
                  tags: dict[str, Any], weights: tuple) -> dict[str, Any]:
    """Train on one ordering, scoring the queries zero-shot at every checkpoint epoch; the base weights
    (`weights` = trained names, their snapshot) are restored afterwards. Returns the run's losses and time."""
    model, tokenizer = scorer.model, scorer.tokenizer
    names, base = weights
    lr = cfg.lrs[optimizer]
    run_tags = {**tags, "method": "finetune", "optimizer": optimizer, "subset": cfg.subset, "lr": lr}
    checkpoints = set(cfg.checkpoints())
    examples = training.encode_examples(tokenizer, training.demo_queries(prompt_set), prompt_set["classes"],
                                        scorer.label_ids)

    def on_epoch(epoch: int) -> None:
        if epoch in checkpoints:
            scorer.add((optimizer, cfg.subset, lr, epoch), prompt_set, "", {**run_tags, "epoch": epoch})

    started = time.perf_counter()
    with training.trainable(model, names, base) as params:
        result = training.train(model, examples, optimizer, lr, cfg.epochs, params, on_epoch,
                                batch_tokens=cfg.batch_tokens)
    return {"optimizer": optimizer, "lr": lr, "order": prompt_set["order"], "first_loss": result.losses[0],
            "last_loss": result.losses[-1], "seconds": time.perf_counter() - started}


def _point_frame(point: _Point) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-query spreads, records) of one curve point; full-vocab rows follow the records' query order."""
    records = pd.concat(point.frames, ignore_index=True)
    spreads = order_spread_examples(records, by=POINT)
    spreads = spreads.rename(columns=_FROM_COMPARE).drop(columns=["top10_std"])
    vocab = point.vocab.summary()
    uids = point.frames[0]["uid"].to_numpy()
    full = pd.DataFrame({"uid": uids, "vocab": vocab["vocab"], "vocab_l2": vocab["vocab_l2"]})
    out = spreads.merge(full, on="uid", how="left", validate="one_to_one")
    return out[[*POINT, "uid", "n_orders", *PER_QUERY]], records


# ---------------------------------------------------------------- summaries


def spread_table(per_query: pd.DataFrame, n_boot: int, ci: float, seed: int) -> pd.DataFrame:
    """Tidy: one row per curve point and statistic, the mean spread over queries and its bootstrap CI."""
    rows = []
    for key, group in per_query.groupby(POINT, sort=True):
        for stat in PER_QUERY:
            mean, lo, hi = stats.bootstrap_ci(group[stat].to_numpy(), n_boot, ci, seed)
            rows.append(dict(zip(POINT, key)) | {"statistic": stat, "spread": mean, "lo": lo, "hi": hi,
                                                 "n_queries": len(group), "n_orders": int(group["n_orders"].min())})
    return pd.DataFrame(rows)


def summary(cfg: OrderConfig, result: OrderResult, vocab_size: int, seconds: float) -> dict[str, Any]:
    """JSON-able account of a job: settings, timings, and the in-memory accumulator size."""
    n_queries = int(result.per_query["uid"].nunique())
    runs = result.runs
    return {
        "config": asdict(cfg),
        "n_queries": n_queries,
        "vocab_size": int(vocab_size),
        "accumulator_mb": len(cfg.checkpoints()) * n_queries * vocab_size * 16 / 2**20,
        "seconds": seconds,
        "train_runs": int(len(runs)),
        "seconds_per_run": float(runs["seconds"].mean()) if len(runs) else None,
        "runs": runs.to_dict("records"),
        "statistics": PER_QUERY,
    }

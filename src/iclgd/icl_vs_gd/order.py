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
  `compare.order_spread_examples`, the full-vocabulary ones from a running (Welford) mean and
  variance over orderings kept in memory (queries x vocab per checkpoint), never on disk.

All standard deviations are population ones (ddof = 0) over the R orderings run, as in
`compare.order_spread`.
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

from iclgd.icl_vs_gd import compare
from iclgd.core import forward, prompts, stats, training

#: Per-query spread columns and what each one is (p_o: ordering o's output for that query).
PER_QUERY = {
    "label": "mean over classes c of sd_o p_o(c), p_o renormalised over the label words",
    "vocab": "mean over all V vocabulary tokens t of sd_o p_o(t), the full next-token distribution",
    "vocab_l2": "sqrt(sum over tokens t of var_o p_o(t)): RMS L2 distance of p_o from the mean distribution",
    "vocab_label": "mean over classes c of sd_o p_o(c), p_o the full-vocabulary probability of c's token",
    "top1": "sd_o of the full-vocabulary top-1 probability",
}
#: compare.order_spread_examples column -> statistic name above.
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


# ---------------------------------------------------------------- full-vocabulary spread


class Welford:
    """Running mean and sum of squared deviations over orderings, per query and token.

    One update per ordering with its (queries x vocab) probabilities; memory is two float64
    arrays of that shape, whatever R is. Identical updates leave m2 exactly 0 (delta is 0), so an
    order-invariant method gets a spread of exactly 0, not a rounding residue.
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.n += 1
        if self.mean is None:
            self.mean, self.m2 = x.copy(), np.zeros_like(x)
            return
        if x.shape != self.mean.shape:
            raise ValueError(f"update of shape {x.shape}, expected {self.mean.shape}")
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def variance(self) -> np.ndarray:
        """Population variance over the updates (0 for a single one)."""
        if self.m2 is None:
            raise ValueError("no updates")
        return np.maximum(self.m2, 0.0) / self.n  # m2 >= 0 in exact arithmetic

    def summary(self) -> dict[str, np.ndarray]:
        """Per query (row): "vocab" = mean_t sd(t) and "vocab_l2" = sqrt(sum_t var(t))."""
        var = self.variance()
        return {"vocab": np.sqrt(var).mean(axis=1), "vocab_l2": np.sqrt(var.sum(axis=1))}


# ---------------------------------------------------------------- the experiment


class _Point:
    """Records and the full-vocabulary accumulator of one curve point, across orderings."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []
        self.vocab = Welford()


def _score(model, tok, ps, queries, label_ids, prefix: str, tags, batching) -> tuple[pd.DataFrame, np.ndarray]:
    texts = [q["query"] for q in queries]
    scores = forward.score_queries(model, tok, prefix, texts, label_ids, batching[0], batch_tokens=batching[1], full=True)
    probs = scores.pop("probs")
    frame = forward.records_frame(tok, {**ps, "queries": list(queries)}, scores, label_ids, tags)
    return frame, probs


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
    sets = [reorder(prompt_set, p, o) for o, p in enumerate(perms)]
    queries = pick_queries(prompt_set, cfg.n_queries, cfg.seed)
    label_ids = forward.label_token_ids(tokenizer, prompt_set["label_words"])
    batching = (batch_size, batch_tokens)
    points: dict[tuple[str, str, float, int], _Point] = {}
    per_query: list[pd.DataFrame] = []

    def add(key, ps, prefix, point_tags) -> None:
        frame, probs = _score(model, tokenizer, ps, queries, label_ids, prefix, point_tags, batching)
        point = points.setdefault(key, _Point())
        point.frames.append(frame)
        point.vocab.update(probs)

    def flush() -> list[pd.DataFrame]:
        done = [_point_frame(p) for p in points.values()]
        per_query.extend(s for s, _ in done)
        points.clear()
        return [r for _, r in done]

    records: list[pd.DataFrame] = []
    bar = tqdm(total=len(sets) * (1 + len(cfg.optimizers)), desc="order runs", disable=not progress)
    for ps in sets:
        add(("icl", "none", 0.0, 0), ps, ps["prefix"], {**tags, "method": "icl"})
        bar.update()
    records += flush()

    names = training.select_parameters(model, cfg.subset)
    base = training.snapshot(model, names)
    runs = []
    checkpoints = set(cfg.checkpoints())
    for optimizer in cfg.optimizers:
        lr = cfg.lrs[optimizer]
        run_tags = {**tags, "method": "finetune", "optimizer": optimizer, "subset": cfg.subset, "lr": lr}
        for ps in sets:
            examples = training.encode_examples(tokenizer, training.demo_queries(ps), ps["classes"], label_ids)

            def on_epoch(epoch: int, ps=ps) -> None:
                if epoch in checkpoints:
                    add((optimizer, cfg.subset, lr, epoch), ps, "", {**run_tags, "epoch": epoch})

            started = time.perf_counter()
            with training.trainable(model, names, base) as params:
                result = training.train(model, examples, optimizer, lr, cfg.epochs, params, on_epoch,
                                        batch_tokens=cfg.batch_tokens)
            runs.append({"optimizer": optimizer, "lr": lr, "order": ps["order"], "first_loss": result.losses[0],
                         "last_loss": result.losses[-1], "seconds": time.perf_counter() - started})
            bar.update()
        records += flush()
    bar.close()
    return OrderResult(pd.concat(records, ignore_index=True), pd.concat(per_query, ignore_index=True),
                       pd.DataFrame(runs))


def _point_frame(point: _Point) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-query spreads, records) of one curve point; full-vocab rows follow the records' query order."""
    records = pd.concat(point.frames, ignore_index=True)
    spreads = compare.order_spread_examples(records, by=POINT)
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

"""What a config costs on GPUs, computed from token counts and per-token costs (arithmetic, not a guess).

`plan` counts per model job (study, model, dataset) of the resolved `Run` the tokens run forward only ("scored";
prefix KV cache reused as `forward.score_prompt_set` does: the prefix once per prompt set, then each query) and
the tokens and optimiser steps trained per "subset/optimizer"; `Costs` turns them into seconds, measured
(`load_costs`) or by the FLOP model (`flop_costs`). Epochs are unknown until a run converges: totals come at
finetune.max_epochs (upper bound) and at a typical count (`measured_epochs`). Costs file, one model on one GPU:
    {"device": "NVIDIA H100 80GB HBM3", "model": "llama-7b", "score_s_per_token": 2.1e-5,
     "train_s_per_token": {"all/adam": 1.4e-3, "v_deep/gd": 3.0e-5}, "peak_gpu_gb": 61.0}
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from iclgd.finetune import study as finetune_study
from iclgd.labels.study import novel_name
from iclgd.tools.token_lengths import TokenLengths, dataset_lengths
from iclgd.order import study as order_study

REPO = Path(__file__).resolve().parents[3]
PEAK_FLOPS = 989e12  # H100 SXM dense bf16
UTILISATION = 0.35  # sustained fraction of the peak: the FLOP model's stated assumption
BANDWIDTH = 3.35e12  # H100 SXM HBM3, bytes/s: what a batch-1 optimiser step is bound by
#: Bytes per trained parameter and step: bf16 gradient read, float32 gradient and master (`MasterWeights`)
#: read and written, bf16 weight written; Adam also reads and writes its two float32 states.
STEP_BYTES = {"gd": 20, "sgd": 20, "adam": 36}
SUBSETS = ("all", "kv", "v_mid", "v_deep")

@dataclass(frozen=True)
class Shape:
    """What costs depend on. `nonembed` leaves out embeddings and the output head (which runs at answer
    positions only, `forward.head_at`): 2 x nonembed FLOPs per token forward."""
    params: int
    nonembed: int
    layers: int
    hidden: int
    kv_dim: int

    def trained(self, subset: str) -> int:
        """Parameters a subset trains (`training.select_parameters`)."""
        one = self.hidden * self.kv_dim
        return self.params if subset == "all" else 2 * one * self.layers if subset == "kv" else one
    def depth(self, subset: str) -> float:
        """Share of the layers the backward pass must reach (down to the lowest trained one)."""
        return {"v_mid": (self.layers - self.layers // 2) / self.layers, "v_deep": 1 / self.layers}.get(subset, 1.0)
    def train_flops(self, subset: str) -> float:
        """Per trained token: forward 2N, activation gradients 2N x depth, weight gradients 2 x trained."""
        return 2 * self.nonembed * (1 + self.depth(subset)) + 2 * min(self.trained(subset), self.nonembed)

#: From the Hugging Face configs (README "LLaMa-7B's shape": 6,738,415,616 parameters).
SHAPES = {"llama-7b": Shape(6_738_415_616, 6_476_271_616, 32, 4096, 4096),
          "smollm2-135m": Shape(134_515_008, 106_203_456, 30, 576, 192),
          "gemma3-270m": Shape(268_098_176, 100_326_016, 18, 640, 256)}

def shape_of(model: str, models: Mapping[str, dict]) -> Shape:
    """An untrained control has its original's shape."""
    from iclgd.core.startup import source_of
    return SHAPES[source_of(model, dict(models))[0] if model in models else model]

@dataclass
class Job:
    """One model job: tokens forward only, and tokens and optimiser steps trained per "subset/optimizer"."""
    study: str
    model: str
    dataset: str
    scored: float = 0.0
    trained: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    runs: int = 0
    def train(self, subset: str, optimizer: str, tokens: float, steps: float, runs: int) -> None:
        key = f"{subset}/{optimizer}"
        self.trained[key] = self.trained.get(key, 0.0) + tokens
        self.steps[key] = self.steps.get(key, 0.0) + steps
        self.runs += runs

@dataclass(frozen=True)
class Epochs:
    """Fine-tuning epochs per (optimizer, subset), and where the numbers come from."""
    per_run: Callable[[str, str], float]
    source: str = "upper bound"

def icl_jobs(run, config: dict[str, Any], lengths: Mapping[str, TokenLengths]) -> list[Job]:
    """Rule icl (models x datasets, controls on theirs): every prompt set, and k >= 2 ones again permuted."""
    icl, perm, out = config["icl"], config["icl"]["permuted"], []
    for model, dataset in dict.fromkeys([*((m, d) for m in run.models for d in run.datasets), *run.pairs["finetune"]]):
        ln, job = lengths[dataset], Job("icl", model, dataset)
        for k in icl["n_demos"]:
            sets = 1 if k == 0 else len(icl["demo_seeds"])
            job.scored += sets * ln.set_tokens(k, ln.n_test)
            if k >= 2:
                job.scored += sets * perm["orders"] * ln.set_tokens(k, ln.queries(perm["n_queries"]))
        out.append(job)
    return out

def finetune_jobs(run, config: dict[str, Any], lengths: Mapping[str, TokenLengths], epochs: Epochs) -> list[Job]:
    """Rule finetune on Run.compared (controls too): a run per prompt set x optimizer x subset x lr; the fit
    measured before each sgd/adam epoch and after the last (gd: its gradient's forward)."""
    out = []
    for model, dataset in run.pairs["finetune"]:
        grid, ln, job = finetune_study.grid(run, model), lengths[dataset], Job("finetune", model, dataset)
        n = len(finetune_study.demo_seeds(run)) * len(grid["lrs"])
        evals = grid["dev_size"] + ln.n_test  # upper bound: every run scored on dev and test
        for k in (k for k in config["icl"]["n_demos"] if k >= 1):
            for opt in grid["optimizers"]:
                for sub in (s for s in grid["subsets"] if [opt, s] not in grid["skip"]):
                    e = epochs.per_run(opt, sub)
                    job.train(sub, opt, n * e * k * ln.demo, n * e * (1 if opt == "gd" else k), n)
                    fits = 1 if opt == "gd" else e + 1
                    job.scored += n * (fits * k * (ln.special + ln.demo) + ln.zero_shot(evals))
        out.append(job)
    return out

def order_jobs(run, config: dict[str, Any], lengths: Mapping[str, TokenLengths]) -> list[Job]:
    """Rule order: ICL in R orderings; per optimizer R runs, the queries scored at each checkpoint."""
    cfg, out = run.blocks["order"], []
    k, r, e = cfg["n_demos"], cfg["orderings"], cfg["epochs"]
    checkpoints = len(set(range(cfg["eval_every"], e + 1, cfg["eval_every"])) | {e})
    for model in run.studies["order"].models:
        optimizers = order_study.order_block(run, model)["optimizers"]  # order.skip left out
        for dataset in run.studies["order"].datasets:
            ln, job = lengths[dataset], Job("order", model, dataset)
            q = ln.queries(cfg["n_queries"])
            job.scored += r * ln.set_tokens(k, q) + len(optimizers) * r * checkpoints * ln.zero_shot(q)
            for opt in optimizers:
                job.train(cfg["subset"], opt, r * e * k * ln.demo, r * e * (1 if opt == "gd" else k), r)
            out.append(job)
    return out

def kernel_jobs(run, config: dict[str, Any], lengths: Mapping[str, TokenLengths]) -> list[Job]:
    """Rule kernel: capture (queries after their set's cached prefix), zero-shot queries and demos,
    k/v probes per set; on extras kNN (a whole prompt per held-out query) and symbols (a second capture)."""
    cfg, k, out = run.blocks["kernel"], run.blocks["kernel"]["n_demos"], []
    for model, dataset in run.pairs["kernel"]:  # kernel.skip left out
        ln, job = lengths[dataset], Job("kernel", model, dataset)
        q = ln.queries(cfg["n_queries"]) + cfg["n_train_queries"]
        sets = min(cfg["n_prompt_sets"], q)
        capture = sets * ln.prefix(k) + q * ln.query
        job.scored = capture + ln.zero_shot(q) + sets * k * (ln.special + ln.demo) + sets * ln.prefix(k)
        if not cfg["extras_datasets"] or dataset in cfg["extras_datasets"]:
            held_out = q - int(round(cfg["select_fraction"] * q))
            job.scored += cfg["knn"] * held_out * ln.set_tokens(k, 1) + bool(cfg["symbols"]) * capture
        out.append(job)
    return out

def labels_jobs(run, config: dict[str, Any], lengths: Mapping[str, TokenLengths]) -> list[Job]:
    """Rule labels: repetitions x conditions contexts of n_demos demonstrations, one forward each."""
    from iclgd.labels import conditions as labels
    cfg, out = run.blocks["labels"], []
    for model, dataset in run.pairs["labels"]:
        classes = cfg["novel"]["sources"] if dataset == novel_name(run) else run.registry[dataset]["classes"]
        contexts = cfg["repetitions"] * len(labels.build_conditions(cfg, len(classes)))
        out.append(Job("labels", model, dataset, scored=contexts * lengths[dataset].prefix(cfg["n_demos"])))
    return out

def dai_jobs(run, config: dict[str, Any], lengths: Mapping[str, TokenLengths]) -> list[Job]:
    """Rule dai: zero-shot once; per prompt set ICL, SGD on k/v (one step per demonstration), its
    final loss and the fine-tuned zero-shot capture."""
    cfg, out = run.blocks["dai"], []
    seeds, e = len(cfg["demo_seeds"]), cfg["epochs"]
    for model, dataset in run.pairs["dai"]:
        ln, job = lengths[dataset], Job("dai", model, dataset)
        q = ln.queries(cfg["n_queries"])
        job.scored = ln.zero_shot(q)
        for k in cfg["n_demos"]:
            job.scored += seeds * (ln.set_tokens(k, q) + k * (ln.special + ln.demo) + ln.zero_shot(q))
            job.train("kv", "sgd", seeds * e * k * ln.demo, seeds * e * k, seeds)
        out.append(job)
    return out

def plan(run, config: dict[str, Any], lengths: Mapping[str, TokenLengths], epochs: Epochs) -> list[Job]:
    """Every model job of the run, study by study."""
    studies = (icl_jobs, order_jobs, kernel_jobs, labels_jobs, dai_jobs)
    return [*finetune_jobs(run, config, lengths, epochs), *(j for f in studies for j in f(run, config, lengths))]

def measured_epochs(results: Path, max_epochs: int) -> Epochs | None:
    """Typical epochs from a run's results/finetune/<model>/<dataset>.runs.csv (column `epochs`), mean per
    (optimizer, subset); a run that hit that run's own cap counts as `max_epochs` (it would have trained on)."""
    import pandas as pd
    files = sorted(Path(results).glob("results/finetune/*/*.runs.csv"))
    if not files:
        return None
    runs = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    runs["paid"] = runs["epochs"].where(runs["status"] != "not_converged", max_epochs)
    mean, overall = runs.groupby(["optimizer", "subset"])["paid"].mean().to_dict(), float(runs["paid"].mean())
    return Epochs(lambda o, s: mean.get((o, s), overall), f"measured: {len(runs)} runs in {len(files)} runs tables "
                  f"under {results} (mean {overall:.1f} epochs, not converged = {max_epochs})")

@dataclass(frozen=True)
class Costs:
    """Seconds per scored token, per trained token and per optimiser step ("subset/optimizer"), one model."""
    source: str
    device: str
    score_s: float
    train_s: Mapping[str, float]
    step_s: Mapping[str, float]
    peak_gpu_gb: float | None = None
    def seconds(self, job: Job) -> float:
        return self.score_s * job.scored + sum(self.train_s[k] * t + self.step_s.get(k, 0) * job.steps[k]
                                               for k, t in job.trained.items())

def flop_costs(shape: Shape, peak: float = PEAK_FLOPS, utilisation: float = UTILISATION,
               bandwidth: float = BANDWIDTH) -> Costs:
    """FLOPs at utilisation x peak; a step moves its optimiser bytes and reads the bf16 weights forward and
    for the layers its backward reaches (batch-1 steps of a few dozen tokens are memory-bound)."""
    keys = [(s, o) for s in SUBSETS for o in STEP_BYTES]
    step = {f"{s}/{o}": (shape.trained(s) * STEP_BYTES[o] + 2 * shape.nonembed * (1 + shape.depth(s))) / bandwidth
            for s, o in keys}
    return Costs(f"FLOP model ({utilisation:.0%} of {peak / 1e12:.0f} TFLOP/s; steps at {bandwidth / 1e12:.2f} TB/s)",
                 "H100 SXM 80 GB", 2 * shape.nonembed / (peak * utilisation),
                 {f"{s}/{o}": shape.train_flops(s) / (peak * utilisation) for s, o in keys}, step)

def load_costs(path: Path, shape: Shape, fallback: Costs) -> Costs:
    """Measured costs scaled by non-embedding parameters from the file's model to `shape`'s (small models are
    latency-bound: lower bounds). Measured training costs include their steps; missing keys keep `fallback`."""
    data = json.loads(Path(path).read_text())
    ratio = shape.nonembed / SHAPES[data.get("model", "llama-7b")].nonembed
    missing = sorted(set(fallback.train_s) - set(data["train_s_per_token"]))
    return Costs(f"measured ({path}, {data.get('model', 'llama-7b')} x {ratio:.3g})" + (
                 f"; FLOP model for {', '.join(missing)}" if missing else ""), data["device"],
                 data["score_s_per_token"] * ratio,
                 {**fallback.train_s, **{k: v * ratio for k, v in data["train_s_per_token"].items()}},
                 {k: fallback.step_s[k] for k in missing}, data.get("peak_gpu_gb"))

def wall_hours(seconds: list[float], nodes: int) -> float:
    """Jobs are independent: the total spread evenly, never below the longest job (a lower bound)."""
    return max(sum(seconds) / nodes, max(seconds, default=0.0)) / 3600

def summarise(upper: list[Job], typical: list[Job], cost_of: Callable[[str], Costs], nodes: list[int]) -> dict:
    """Per (study, model) and in total: jobs, runs, tokens, GPU-hours at both epoch counts; wall per N nodes."""
    secs = [[cost_of(j.model).seconds(j) for j in jobs] for jobs in (upper, typical)]
    rows: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for hi, lo, s_hi, s_lo in zip(upper, typical, *secs):
        row = rows[hi.study, hi.model]
        for key, value in (("jobs", 1), ("runs", hi.runs), ("scored", hi.scored), ("trained", sum(hi.trained.values())),
                           ("trained_typical", sum(lo.trained.values())), ("gpu_h", s_hi / 3600),
                           ("gpu_h_typical", s_lo / 3600)):
            row[key] += value
        row["longest_h"] = max(row["longest_h"], s_hi / 3600)
    table = [{"study": s, "model": m, **v} for (s, m), v in rows.items()]
    total = {key: sum(r[key] for r in table) for key in table[0] if key not in ("study", "model")}
    total["longest_h"] = max(r["longest_h"] for r in table)
    return {"rows": table, "total": total, "wall_h": {n: [wall_hours(s, n) for s in secs] for n in nodes}}

def markdown(summary: dict[str, Any], notes: list[str]) -> str:
    """The README table: a row per study x model and the total, then wall time per number of nodes."""
    def n(x: float) -> str:
        return f"{x / 1e9:.2f} B" if x >= 1e8 else f"{x / 1e6:.1f} M" if x >= 1e5 else f"{x:,.0f}"
    rows = [f"| {r['study']} | {r['model']} | {r['jobs']:.0f} | {r['runs']:,.0f} | {n(r['scored'])} | {n(r['trained'])}"
            f" / {n(r['trained_typical'])} | {r['gpu_h']:,.1f} | {r['gpu_h_typical']:,.1f} | {r['longest_h']:,.1f} |"
            for r in [*summary["rows"], {"study": "**total**", "model": "", **summary["total"]}]]
    wall = [f"| {k} | {a:,.1f} h ({a / 24:,.1f} d) | {b:,.1f} h ({b / 24:,.1f} d) |" for k, (a, b) in
            summary["wall_h"].items()]
    return "\n".join(["| study | model | jobs | training runs | tokens scored | tokens trained (max / typical) | GPU-h"
                      " at max epochs | GPU-h typical | longest job, h |", "|---|---|--:|--:|--:|--:|--:|--:|--:|",
                      *rows, "", "| nodes (1 GPU each) | wall at max epochs | wall typical |", "|--:|--:|--:|", *wall,
                      "", *(f"- {note}" for note in notes)]) + "\n"

def tokenizer_for(config: dict[str, Any], path: Path) -> tuple[Any, Any, str]:
    """(tokenizer, cache identity, name): LLaMa's where `path` holds it, else SmolLM2's from its package."""
    from iclgd.core import llama_tokenizer, startup
    if (Path(path) / "tokenizer.json").exists():
        return llama_tokenizer.load_llama_tokenizer(path), ["llama", str(Path(path).resolve())], f"LLaMa's ({path})"
    identity, load = startup.tokenizer_of("smollm2-135m", config["models"])
    return load(), identity, f"SmolLM2's (no LLaMa tokenizer at {path}: lengths differ from LLaMa's)"

def main(argv: list[str] | None = None) -> dict[str, Any]:
    from iclgd.core.config import resolve
    from iclgd.core.config_files import load_config
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "config" / "paper.yaml")
    p.add_argument("--costs", type=Path, help="measured costs JSON (module docstring); default: the FLOP model")
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--utilisation", type=float, default=UTILISATION, help="FLOP model: sustained share of the peak")
    p.add_argument("--results", type=Path, default=Path("."), help="run directory with results/finetune/*/*.runs.csv")
    p.add_argument("--typical-epochs", type=float, help="a stated typical epoch count instead of a measured one")
    p.add_argument("--out", type=Path, default=Path("results/cost/paper.json"))
    p.add_argument("--markdown", type=Path, default=Path("results/cost/paper.md"))
    args = p.parse_args(argv)
    config = load_config(REPO, args.config)
    run, cap = resolve(config, REPO), config["finetune"]["max_epochs"]
    tok, identity, tok_name = tokenizer_for(config, REPO / "resources" / "tokenizers" / "llama")
    lengths = dataset_lengths(run, config, tok, identity)
    typical = (Epochs(lambda o, s: args.typical_epochs, source=f"stated: {args.typical_epochs:g} per run")
               if args.typical_epochs else measured_epochs(args.results, cap)
               or Epochs(lambda o, s: cap, source=f"= max (no runs tables under {args.results}/results/finetune)"))
    shapes = {m: shape_of(m, config["models"]) for m in (*run.models, *run.control.models)}
    flops = {m: flop_costs(s, utilisation=args.utilisation) for m, s in shapes.items()}
    costs = {m: load_costs(args.costs, shapes[m], f) if args.costs else f for m, f in flops.items()}
    summary = summarise(plan(run, config, lengths, Epochs(lambda o, s: cap)), plan(run, config, lengths, typical),
                        costs.__getitem__, args.nodes)
    ref = costs[run.models[0]]
    notes = [f"costs: {ref.source}, {ref.device}" + (f", peak {ref.peak_gpu_gb} GB" if ref.peak_gpu_gb else ""),
             f"token lengths: {tok_name} tokenizer, {len(lengths)} datasets",
             f"fine-tuning epochs: max {cap}, typical {typical.source}"]
    out = {"config": str(args.config), "notes": notes, "lengths": {d: asdict(v) for d, v in lengths.items()}, **summary}
    for path, text in ((args.out, json.dumps(out, indent=1) + "\n"), (args.markdown, markdown(summary, notes))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return out

if __name__ == "__main__":
    main()

"""Offline GPU check: what a borrowed GPU machine (no network, no model weights) can still establish.

(a) Equivalence: a tiny random Llama with a carried tokenizer through the project's scoring (prefix reuse) and
    fine-tuning (`training.train`, gd/sgd/adam on two subsets; `train_until`) on CPU float32 (the reference, run
    twice), CUDA float32 and CUDA bf16, compared with `gpu_check.compare_records` / `compare_losses`.
(b) Timing: LLaMa-7B's configuration (`shape_run.LLAMA_7B`) with random bf16 weights built on the GPU: scoring
    (k = 8 and a ~2k-token prefix) and one fine-tuning step per subset x optimizer at config/paper.yaml's settings,
    peak GPU memory per step, "oom" where it does not fit; per-token seconds for a cost table. Time-boxed by
    --budget-s. Without CUDA every CUDA step is skipped and named in "skipped"; (b) then runs the `tiny` shape
    on the CPU, marked as such.

    python -m iclgd.tools.gpu_offline --tokenizer resources/tokenizers/llama --out runs/gpu-offline.json
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import math
import platform
import resource
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import transformers
import yaml
from transformers import AutoTokenizer, LlamaForCausalLM

from iclgd.core import forward, models, prompts, training
from iclgd.tools.gpu_check import compare_losses, compare_records, summarize
from iclgd.tools.shape_run import SHAPES

SCHEMA = "iclgd.gpu_offline/1"
REPO = Path(__file__).resolve().parents[3]
DEFAULT_TOKENIZER = REPO / "resources" / "tokenizers" / "llama"
#: (device, dtype) of each equivalence run; the first is the reference.
CONFIGS = [("cpu", "float32"), ("cuda", "float32"), ("cuda", "bfloat16")]
FT_CASES = [("all", "gd"), ("all", "sgd"), ("all", "adam"), ("v_mid", "gd"), ("v_mid", "sgd"), ("v_mid", "adam")]
TINY_LRS = {"gd": 0.05, "sgd": 0.05, "adam": 3e-3}  # large enough that a tiny random model moves
TIMING_SUBSETS = ("v_mid", "v_deep", "kv", "all")  # cheapest first: the budget cuts the expensive end
GB = 1e9

NOUNS = "film script cast story ending score sequel plot lead dialogue".split()
WORDS = {"positive": "gripping warm sharp moving funny clever wise tender bold charming".split(),
         "negative": "tedious muddled flat lifeless clumsy smug forgettable joyless lazy dull".split()}
ENDS = {"positive": ["and it earns every minute of its running time", "a quiet triumph that stays with you for days",
                     "one of the most charming surprises of the year", "the performances alone are worth the ticket"],
        "negative": ["and i wanted those two hours back long before the end", "a lazy retread of much better films",
                     "nothing here works , least of all the jokes", "it sinks early and never recovers"]}


def reviews(n: int, uid0: int) -> pd.DataFrame:
    """Synthetic SST-2-style reviews (~20 words, like SST-2's), labels alternating, deterministic."""
    label = lambda i: "positive" if i % 2 == 0 else "negative"  # noqa: E731
    texts = [f"the {NOUNS[3 * i % 10]} is {WORDS[label(i)][i % 10]} and {WORDS[label(i)][(7 * i + 3) % 10]} , "
             f"{ENDS[label(i)][i // 2 % 4]} ." for i in range(n)]
    return pd.DataFrame({"uid": range(uid0, uid0 + n), "text": texts, "label": [label(i) for i in range(n)]})


def sst2_spec() -> dict[str, Any]:
    """The dataset registry's SST-2 template, verbalizer and classes (plain YAML: no schema check needed)."""
    spec = yaml.safe_load((REPO / "config" / "datasets.yaml").read_text(encoding="utf-8"))["sst2"]
    return {key: spec[key] for key in ("template", "verbalizer", "classes")}


def prompt_set(k: int, n_queries: int) -> dict[str, Any]:
    """One SST-2-style prompt set (k demonstrations, n_queries test queries), rendered by `prompts`."""
    return prompts.build_prompt_sets("sst2", sst2_spec(), reviews(max(k + 2, 4), 1000), reviews(n_queries, 5000), [k], [0])[0]


def long_prompt_set(tok, target_tokens: int, n_queries: int) -> dict[str, Any]:
    """A prompt set whose prefix holds about `target_tokens` tokens (long-context scoring)."""
    per_demo = len(forward.encode_prefix(tok, prompt_set(8, 1)["prefix"])) / 8
    return prompt_set(max(8, int(target_tokens / per_demo)), n_queries)


def published_settings(repo: Path = REPO) -> dict[str, Any]:
    """config/paper.yaml's fine-tuning and runtime settings over config/config.yaml and the schema's defaults
    (read as plain YAML, as Snakemake would merge them, so Snakemake need not be importable)."""
    read = lambda name: yaml.safe_load((repo / "config" / name).read_text(encoding="utf-8")) or {}  # noqa: E731
    schema, base, paper = read("schema.yaml"), read("config.yaml"), read("paper.yaml")
    props = schema["properties"]["finetune"]["properties"]
    finetune = {k: v["default"] for k, v in props.items() if "default" in v} | base.get("finetune", {}) | paper.get("finetune", {})
    keep = ("lrs", "dev_size", "max_epochs", "target_loss", "blowup", "diverge_patience", "micro_batch", "batch_tokens")
    return {"finetune": {k: finetune[k] for k in keep}, "runtime": base["runtime"] | paper.get("runtime", {})}


def load_tokenizer(path: Path) -> tuple[Any, dict[str, Any]]:
    """The carried tokenizer: a `llama_tokenizer` build (it holds source.json) through that module's loader, which
    keeps LLaMa's dummy prefix (transformers' AutoTokenizer drops it); any other HF directory through AutoTokenizer."""
    if (path / "source.json").exists():
        from iclgd.core.llama_tokenizer import load_llama_tokenizer

        return load_llama_tokenizer(path), {"path": str(path), "loader": "llama_tokenizer.load_llama_tokenizer"}
    return AutoTokenizer.from_pretrained(path), {"path": str(path), "loader": "AutoTokenizer"}


def _sync(device: str) -> None:
    torch.cuda.synchronize() if device.startswith("cuda") else None


def equivalence_run(base_model, tok, device: str, dtype: str, ps: dict[str, Any], settings: dict[str, Any],
                    epochs: int) -> dict[str, Any]:
    """Score and fine-tune a copy of `base_model` on (device, dtype); everything a comparison needs."""
    started = time.perf_counter()
    model = copy.deepcopy(base_model).to(device=device, dtype=getattr(torch, dtype)).eval()
    rt, ft = settings["runtime"], settings["finetune"]
    out: dict[str, Any] = {"icl": forward.score_prompt_set(model, tok, ps, rt["batch_size"], {"model": "tiny"}, rt["batch_tokens"]),
                           "finetune": {}}
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    examples = training.encode_examples(tok, training.demo_queries(ps), ps["classes"], label_ids)
    queries = [q["query"] for q in ps["queries"]]
    for subset, opt in FT_CASES:
        names = training.select_parameters(model, subset)
        tags = {"model": "tiny", "method": "finetune", "optimizer": opt, "subset": subset, "lr": TINY_LRS[opt], "epoch": epochs}
        with training.trainable(model, names, training.snapshot(model, names)) as params:
            result = training.train(model, examples, opt, TINY_LRS[opt], epochs, params, micro_batch=ft["micro_batch"],
                                    batch_tokens=ft["batch_tokens"])
            scores = forward.score_queries(model, tok, "", queries, label_ids, rt["batch_size"], batch_tokens=rt["batch_tokens"])
            records = forward.records_frame(tok, ps, scores, label_ids, tags)  # zero-shot, as finetune.evaluate
        out["finetune"][f"{subset}/{opt}"] = {"losses": result.losses, "records": records}
    names = training.select_parameters(model, "all")
    with training.trainable(model, names) as params:
        run = training.train_until(model, examples, "gd", TINY_LRS["gd"], params, epochs * 3, ft["target_loss"],
                                   ft["micro_batch"], ft["batch_tokens"], blowup=ft["blowup"],
                                   diverge_patience=ft["diverge_patience"])
    out["until"] = {"status": run.status, "epochs": run.epochs, "losses": [f.loss for f in run.fits]}
    _sync(device)
    out["seconds"] = round(time.perf_counter() - started, 2)
    return out


def compare_equivalence(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """One configuration against the reference: ICL records, every fine-tuned case, train_until."""
    icl = compare_records(reference["icl"], other["icl"], "icl")
    finetune = {}
    for case, ref in reference["finetune"].items():
        oth = other["finetune"][case]
        finetune[case] = {"loss": compare_losses(ref["losses"], oth["losses"], case),
                          "records": compare_records(ref["records"], oth["records"], case)}
    ru, ou = reference["until"], other["until"]
    until = {"status": [ru["status"], ou["status"]], "epochs": [ru["epochs"], ou["epochs"]],
             "agree": ru["status"] == ou["status"] and ru["epochs"] == ou["epochs"]}
    if until["agree"]:
        until["loss"] = compare_losses(ru["losses"], ou["losses"], "train_until")
    worst = summarize([icl] + [f["records"] for f in finetune.values()], [f["loss"] for f in finetune.values()])
    worst["finetuned_accuracy_agreement"] = all(f["records"]["accuracy_cpu"] == f["records"]["accuracy_gpu"]
                                                for f in finetune.values())
    return {"icl": icl, "finetune": finetune, "train_until": until, "worst": worst | {"train_until_agree": until["agree"]},
            "seconds": other["seconds"]}


def equivalence(tok, settings: dict[str, Any], cuda: bool, skipped: list[str], epochs: int = 3) -> dict[str, Any]:
    """(a): the reference run, then each other configuration (and the reference again) compared with it."""
    base, ps, ref_label = models.tiny_llama(tok, seed=0), prompt_set(4, 12), "/".join(CONFIGS[0])
    reference = equivalence_run(base, tok, *CONFIGS[0], ps, settings, epochs)
    report: dict[str, Any] = {"reference": ref_label, "model": "models.tiny_llama(seed=0): 2 layers x 64",
                              "parameters": sum(p.numel() for p in base.parameters()), "k": ps["k"], "queries": len(ps["queries"]),
                              "epochs": epochs, "lrs": TINY_LRS, "reference_seconds": reference["seconds"], "comparisons": {}}
    for device, dtype, name in [(*CONFIGS[0], f"{ref_label} (repeat)")] + [(d, t, f"{d}/{t}") for d, t in CONFIGS[1:]]:
        if device == "cuda" and not cuda:
            skipped.append(f"equivalence {name}: CUDA is not available")
        else:
            report["comparisons"][name] = compare_equivalence(reference, equivalence_run(base, tok, device, dtype, ps, settings, epochs))
    return report


class Timer:
    """Runs measured cases one by one until the budget is spent; OOM is recorded, not raised."""

    def __init__(self, device: str, budget_s: float) -> None:
        self.device, self.budget_s, self.started = device, budget_s, time.perf_counter()

    def spent(self) -> bool:
        return time.perf_counter() - self.started > self.budget_s

    def case(self, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self.spent():
            return {"status": "skipped", "reason": f"--budget-s {self.budget_s} spent"}
        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        try:
            entry = {"status": "ok"} | fn()
        except torch.cuda.OutOfMemoryError as exc:
            entry = {"status": "oom", "error": str(exc).splitlines()[0][:300]}
        except RuntimeError as exc:  # some kernels report OOM as a plain RuntimeError
            entry = {"status": "oom" if "out of memory" in str(exc) else "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        if entry["status"] != "ok":
            gc.collect()  # after the except block: the traceback no longer holds the failed step's tensors
        if cuda:
            entry["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / GB, 3)
            torch.cuda.empty_cache()
        entry["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB, 3)
        return entry


def _score(model, tok, ps, settings, device) -> dict[str, Any]:
    """Prefix-reused scoring, warmed up once, then timed: seconds per forward token and per prompt token."""
    rt = settings["runtime"]
    score = lambda: forward.score_prompt_set(model, tok, ps, rt["batch_size"], {}, rt["batch_tokens"])  # noqa: E731
    score()
    _sync(device)
    started = time.perf_counter()
    records = score()
    _sync(device)
    seconds, prefix = time.perf_counter() - started, len(forward.encode_prefix(tok, ps["prefix"]))
    forward_tokens = prefix + int((records["n_tokens"] - prefix).sum())  # the prefix runs once (reuse)
    prompt_tokens = int(records["n_tokens"].sum())  # what the queries' full prompts hold
    return {"k": ps["k"], "queries": len(records), "prefix_tokens": prefix, "forward_tokens": forward_tokens,
            "prompt_tokens": prompt_tokens, "seconds": round(seconds, 4), "forward_tokens_per_s": round(forward_tokens / seconds, 1),
            "seconds_per_forward_token": seconds / forward_tokens, "seconds_per_prompt_token": seconds / prompt_tokens,
            "seconds_per_query": seconds / len(records), "batch_size": rt["batch_size"], "batch_tokens": rt["batch_tokens"]}


def _train_step(model, names, base, examples, optimizer, lr, settings, device) -> dict[str, Any]:
    """Two steps through `training.train` (epochs=2: gd one full batch each, sgd/adam one demonstration
    each); the second, with the optimiser state in place and kernels warm, is the per-step cost."""
    ft, batch = settings["finetune"], (examples if optimizer == "gd" else examples[:1])
    marks = [time.perf_counter()]
    on_epoch = lambda _epoch: (_sync(device), marks.append(time.perf_counter()))  # noqa: E731
    with training.trainable(model, names, base) as params:
        result = training.train(model, batch, optimizer, lr, 2, params, on_epoch, ft["micro_batch"], ft["batch_tokens"])
    tokens, step = sum(len(ex.ids) for ex in batch), marks[2] - marks[1]
    return {"examples": len(batch), "tokens": tokens, "first_step_seconds": round(marks[1] - marks[0], 4),
            "step_seconds": round(step, 4), "seconds_per_trained_token": step / tokens,
            "restore_seconds": round(time.perf_counter() - marks[2], 3), "losses": result.losses}


def timing(tok, settings: dict[str, Any], device: str, shape: str, budget_s: float) -> dict[str, Any]:
    """(b): the shape's random model built on `device` (bf16 on CUDA, float32 on the CPU), scored and trained."""
    ps, long_ps = prompt_set(8, settings["finetune"]["dev_size"]), long_prompt_set(tok, 1900, 16)
    texts = [ps["prefix"], long_ps["prefix"], *(q["query"] for q in ps["queries"] + long_ps["queries"])]
    top, config = max(max(tok(t).input_ids) for t in texts), SHAPES[shape]()  # the prompts' ids must fit the embedding
    if top >= config.vocab_size:
        raise ValueError(f"the tokenizer gives id {top} on the prompts, the {shape} shape's vocabulary is {config.vocab_size}")
    dtype, timer = (torch.bfloat16 if device.startswith("cuda") else torch.float32), Timer(device, budget_s)
    report: dict[str, Any] = {"shape": shape, "device": device, "dtype": str(dtype).removeprefix("torch."),
                              "budget_s": budget_s, "settings": settings}
    if shape != "llama-7b":
        report["marked"] = f"{shape} shape (not LLaMa-7B): exercises the code path; its costs are no LLaMa-7B costs"
    started, _ = time.perf_counter(), torch.manual_seed(0)
    with torch.device(device):  # random weights drawn where they live: nothing from disk, no host copy
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    model = model.to(device).eval()  # a no-op unless the weights were built elsewhere
    _sync(device)
    report |= {"build_seconds": round(time.perf_counter() - started, 2), "weights_on": str(next(model.parameters()).device),
               "parameters": sum(p.numel() for p in model.parameters())}
    report["scoring_k8"] = timer.case(lambda: _score(model, tok, ps, settings, device))
    report["scoring_long"] = timer.case(lambda: _score(model, tok, long_ps, settings, device))
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    examples = training.encode_examples(tok, training.demo_queries(ps), ps["classes"], label_ids)
    lr, report["train"] = settings["finetune"]["lrs"][0], []  # the grid's first: the rate does not change the cost
    for subset in TIMING_SUBSETS:
        names = training.select_parameters(model, subset)
        snap_started = time.perf_counter()
        base = {} if timer.spent() else training.snapshot(model, names)  # host copy, restored after each step
        snap_s = round(time.perf_counter() - snap_started, 3)
        for optimizer in training.OPTIMIZERS:
            entry = timer.case(functools.partial(_train_step, model, names, base, examples, optimizer, lr, settings, device))
            report["train"].append({"subset": subset, "optimizer": optimizer, "lr": lr, "snapshot_seconds": snap_s,
                                    "trainable_parameters": sum(p.numel() for n, p in model.named_parameters() if n in names)} | entry)
    report["elapsed_s"] = round(time.perf_counter() - timer.started, 2)
    ok = [e for e in report["train"] if e["status"] == "ok"]  # oom / skipped keys stay out: cost.py models them
    report["costs"] = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu", "model": shape,
                       "score_s_per_token": report["scoring_k8"].get("seconds_per_forward_token"),
                       "train_s_per_token": {f"{e['subset']}/{e['optimizer']}": e["seconds_per_trained_token"] for e in ok},
                       "peak_gpu_gb": max((e["peak_gpu_gb"] for e in ok if "peak_gpu_gb" in e), default=None)}
    return report


def clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run(tokenizer: Path, budget_s: float = 300.0, shape: str = "auto", epochs: int = 3,
        install: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole report; `install` (what .ci/gpu-check --offline installed and from where) is kept as is."""
    started, cuda = time.perf_counter(), torch.cuda.is_available()
    (tok, tok_info), settings = load_tokenizer(Path(tokenizer)), published_settings()
    report: dict[str, Any] = {
        "schema": SCHEMA, "cuda": cuda, "device_name": torch.cuda.get_device_name(0) if cuda else None, "skipped": [],
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__, "cuda": torch.version.cuda, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32},
        "tokenizer": tok_info | {"class": type(tok).__name__, "size": len(tok)},
        "settings": settings, "install": install,
    }
    report["equivalence"] = equivalence(tok, settings, cuda, report["skipped"], epochs)
    shape = shape if shape != "auto" else ("llama-7b" if cuda else "tiny")
    if not cuda:
        report["skipped"].append(f"timing on CUDA: CUDA is not available; the {shape} shape ran on the CPU instead")
    report["timing"] = timing(tok, settings, "cuda" if cuda else "cpu", shape, budget_s)
    report["wall_s"] = round(time.perf_counter() - started, 2)
    return clean(report)


def headline(report: dict[str, Any]) -> str:
    lines = [f"cuda: {report['cuda']} ({report['device_name']}); skipped: {len(report['skipped'])}; wall {report['wall_s']} s"]
    for name, comp in report["equivalence"]["comparisons"].items():
        w = comp["worst"]
        lines.append(f"{name:>22} vs {report['equivalence']['reference']}: max|d logp| {w['max_abs_diff_logprob']:.3g}  "
                     f"agree {w['min_argmax_agreement']:.3f}  max|d loss| {w['max_loss_abs_diff']:.3g}  until {w['train_until_agree']}")
    t = report["timing"]
    lines += [f"{t['shape']} {key}: {t[key]['status']} {t[key].get('forward_tokens_per_s', '')} tok/s"
              for key in ("scoring_k8", "scoring_long")]
    lines += [f"{t['shape']} train {e['subset']:>6}/{e['optimizer']:<4} {e['status']:<7} {e.get('step_seconds', '-')} s/step  "
              f"peak GPU {e.get('peak_gpu_gb', '-')} GB" for e in t["train"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER, help="a tokenizer directory (HF or LLaMa)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gpu-offline.json", help="the report (JSON)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="time box for (b), the timing part")
    parser.add_argument("--shape", choices=["auto", *sorted(SHAPES)], default="auto", help="auto: llama-7b on CUDA, tiny on CPU")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs of the equivalence runs")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--install-report", type=Path, help="JSON written by .ci/gpu-check --offline's install step")
    parser.add_argument("--costs-out", type=Path, help="also write timing.costs here (cost.load_costs' format)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    if not args.tokenizer.is_dir():
        parser.exit(2, f"gpu_offline: no tokenizer directory {args.tokenizer} (carry it, or pass --tokenizer)\n")
    install = json.loads(args.install_report.read_text()) if args.install_report else None
    report = run(args.tokenizer, args.budget_s, args.shape, args.epochs, install)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.costs_out:
        args.costs_out.write_text(json.dumps(report["timing"]["costs"], indent=2) + "\n")
    print(headline(report))


if __name__ == "__main__":
    main()

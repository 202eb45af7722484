"""`make bench`: speed of the hot paths on this machine, as ratios against baselines run here.

Not a test: nothing asserts a time. Printed:
  * ICL scoring tokens/s with the shared-prefix KV cache vs a naive full-prompt loop on the same
    prompts (and their ratio), with the agreement of the two;
  * the machine's float32 matmul FLOP/s and the fraction of it the cached scorer reaches;
  * model load time from the 4-bit GGUF (dequantising) vs from the cached safetensors;
  * fine-tuning, per model in a fresh child process at the pipeline's thread count
    (`runtime.threads`): full-batch GD training FLOP/s (forward + backward = 3 forward FLOPs) as a
    fraction of torch.mm's at that thread count, the factored vocabulary gradient vs autograd's dense
    one, zero-shot evaluation tokens/s next to the ICL scorer's on the same queries, and the child's
    peak RSS (snapshot + training, what a fine-tuning job holds).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from iclgd.core import forward, models, training
from iclgd.core.config_files import load_config

REPO = Path(__file__).resolve().parents[3]  # src/iclgd/tools/bench.py -> the repository
REVIEWS = [
    "a gripping, beautifully shot film", "tedious and far too long", "the cast is superb",
    "an empty, joyless exercise", "funny, warm and wise", "i want those two hours back",
    "a minor triumph of mood over plot", "clumsy dialogue sinks it",
]


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time of `repeat` calls (after the caller's warm-up)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops(n: int = 2048, repeat: int = 5) -> float:
    """Peak-ish float32 FLOP/s of torch.mm on this machine (the denominator of 'fraction reached')."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    return 2 * n**3 / timed(lambda: torch.mm(a, b), repeat)


def bench_prompts(k: int, n_queries: int, seed: int = 0) -> tuple[str, list[str]]:
    """A k-shot sentiment prefix and n test queries, deterministic."""
    rng = np.random.default_rng(seed)
    demo = lambda i: f"Review: {REVIEWS[i % len(REVIEWS)]}\nSentiment: {'positive' if i % 2 == 0 else 'negative'}\n\n"
    prefix = "".join(demo(i) for i in rng.permutation(k))
    queries = [f"Review: {REVIEWS[i]} and {REVIEWS[j]}\nSentiment:" for i, j in rng.integers(0, len(REVIEWS), (n_queries, 2))]
    return prefix, queries


def review_queries(n: int, reviews: Callable[[int], int], sep: str = " and ") -> list[str]:
    """n queries, the i-th of `reviews(i)` consecutive reviews: lengths that vary, as real demonstrations' do."""
    return [f"Review: {sep.join(REVIEWS[(i + j) % len(REVIEWS)] for j in range(reviews(i)))}\nSentiment:"
            for i in range(n)]


def demo_examples(tok, queries: list[str]) -> list[training.Example]:
    """The queries as training demonstrations, labelled pos / neg in turn (label words positive / negative)."""
    demos = [{"uid": i, "label": "pos" if i % 2 == 0 else "neg", "query": q} for i, q in enumerate(queries)]
    return training.encode_examples(tok, demos, ["pos", "neg"], forward.label_token_ids(tok, ["positive", "negative"]))


def bench_scoring(model, tok, k: int, n_queries: int, batch_size: int, batch_tokens: int) -> dict[str, float]:
    """Cached-prefix batched scoring vs one full forward per prompt, same prompts, same model."""
    prefix, queries = bench_prompts(k, n_queries)
    labels = forward.label_token_ids(tok, ["positive", "negative"])
    prefix_ids = forward.encode_prefix(tok, prefix)
    query_ids = [forward.encode_query(tok, q, prefix) for q in queries]
    full_ids = [prefix_ids + q for q in query_ids]
    n_tokens = sum(len(ids) for ids in full_ids)
    cached = lambda: forward.score_queries(model, tok, prefix, queries, labels, batch_size, batch_tokens=batch_tokens)
    naive = lambda: [forward.score_full(model, ids, labels) for ids in full_ids]
    cached()  # warm-up
    t_cached, t_naive = timed(cached, 2), timed(naive, 1)
    got = cached()["label_logprobs"]
    ref = np.concatenate([r["label_logprobs"] for r in naive()])
    return {
        "prompt_tokens": n_tokens,
        "cached_tok_s": n_tokens / t_cached,
        "naive_tok_s": n_tokens / t_naive,
        "speedup": t_naive / t_cached,
        "max_abs_diff": float(np.abs(got - ref).max()),
        "computed_tokens": len(prefix_ids) + sum(len(q) for q in query_ids),
        "seconds_cached": t_cached,
    }


def forward_flops_per_token(model) -> float:
    """2 x parameters touched per token (embeddings are a lookup; the LM head runs once per query)."""
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n)
    return 2.0 * params


def bench_loading(name: str, registry: dict) -> dict[str, float]:
    """GGUF dequantisation (what prepare_model does once) vs loading the cached safetensors."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / name
        start = time.perf_counter()
        models.prepare_model(name, registry, out)
        t_gguf = time.perf_counter() - start
        t_cache = timed(lambda: models.load_model(out, "cpu", "float32"), 2)
    return {"gguf_s": t_gguf, "safetensors_s": t_cache, "ratio": t_gguf / t_cache}


def bench_finetune(model_dir: Path, k: int = 8, epochs: int = 10, runs: int = 2) -> dict[str, float]:
    """Seconds per fine-tuning run: restore the trained weights in memory vs reload the model from disk."""
    model, tok = models.load_model(model_dir, "cpu", "float32")
    _, queries = bench_prompts(k, k)
    names = training.select_parameters(model, "all")
    base = training.snapshot(model, names)

    def in_memory(keep: bool = False) -> dict[str, torch.Tensor] | None:
        with training.trainable(model, names, base) as params:
            training.train(model, demo_examples(tok, queries), "gd", 1e-4, epochs, params)
            return training.snapshot(model, names) if keep else None

    def reload(keep: bool = False) -> dict[str, torch.Tensor] | None:
        fresh, fresh_tok = models.load_model(model_dir, "cpu", "float32")
        params = training.freeze_except(fresh, names)
        training.train(fresh, demo_examples(fresh_tok, queries), "gd", 1e-4, epochs, params)
        return training.snapshot(fresh, names) if keep else None

    # warm-up (the first backward pass allocates, which neither side should pay for), and the check that
    # both ways train the same weights: restoring in memory is only a speed-up if it loses nothing
    diff = _max_abs_diff(in_memory(keep=True), reload(keep=True))
    t_memory = sum(timed(in_memory) for _ in range(runs)) / runs
    t_reload = sum(timed(reload) for _ in range(runs)) / runs
    restored = _max_abs_diff(base, training.snapshot(model, names))
    return {"restore_s": t_memory, "reload_s": t_reload, "ratio": t_reload / t_memory, "max_abs_diff": diff,
            "restored_diff": restored}


def bench_packing(model_dir: Path, k: int = 8, epochs: int = 3, budget: int = 256) -> dict[str, float]:
    """Seconds per full-batch GD run: length-sorted micro-batches under `budget` tokens vs one padded batch.

    Both give the same mean-loss gradient (to rounding); packing only skips the padding.
    """
    model, tok = models.load_model(model_dir, "cpu", "float32")
    # demonstrations of 1-4 reviews each: real demonstration lengths vary several-fold (SST-2: 27-70 tokens)
    examples = demo_examples(tok, review_queries(k, lambda i: 1 + i % 4))
    names = training.select_parameters(model, "all")
    base = training.snapshot(model, names)

    def run(tokens: int, keep: bool = False) -> dict[str, torch.Tensor] | None:
        with training.trainable(model, names, base) as params:
            training.train(model, examples, "gd", 1e-4, epochs, params, batch_tokens=tokens)
            return training.snapshot(model, names) if keep else None

    diff = _max_abs_diff(run(budget, keep=True), run(10**9, keep=True))  # warm-up, and the weights agree
    t_packed, t_padded = timed(lambda: run(budget)), timed(lambda: run(10**9))
    lengths = [len(ex.ids) for ex in examples]
    return {"packed_s": t_packed, "padded_s": t_padded, "ratio": t_padded / t_packed, "max_abs_diff": diff,
            "padding": 1 - sum(lengths) / (len(lengths) * max(lengths))}


def _max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest elementwise difference between two sets of the same named weights."""
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def bench_head(model_dir: Path, n_queries: int = 32, batch_size: int = 16) -> dict[str, float]:
    """Seconds to score zero-shot queries of mixed length: the output head applied only at each row's
    last token (`forward.head_at`) vs at every position that is some row's last token
    (`logits_to_keep`, the earlier path), with the largest difference of the label log-probs."""
    model, tok = models.load_model(model_dir, "cpu", "float32")
    texts = review_queries(n_queries, lambda i: 1 + i % 4, sep=" ")
    label_ids = forward.label_token_ids(tok, ["positive", "negative"])
    ids = [forward.encode_query(tok, t) for t in texts]
    width = max(len(x) for x in ids)
    forward.check_length(model, width, "bench_head")
    pad = tok.pad_token_id or 0
    batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]

    def head_logprobs(batch, gather: bool) -> torch.Tensor:
        inp = torch.full((len(batch), width), pad, dtype=torch.long)
        for row, x in enumerate(batch):
            inp[row, : len(x)] = torch.tensor(x)
        last = torch.tensor([len(x) - 1 for x in batch])
        with torch.inference_mode():
            if gather:
                with forward.head_at(model, last):
                    logits = model(input_ids=inp).logits[:, 0]
            else:
                keep = torch.unique(last)
                out = model(input_ids=inp, logits_to_keep=keep).logits
                logits = out[torch.arange(len(batch)), torch.searchsorted(keep, last)]
        return torch.log_softmax(logits.float(), -1)[:, label_ids]

    def run(gather: bool) -> torch.Tensor:
        return torch.cat([head_logprobs(b, gather) for b in batches])

    diff = float((run(True) - run(False)).abs().max())
    t_gather, t_keep = timed(lambda: run(True)), timed(lambda: run(False))
    return {"gather_s": t_gather, "keep_s": t_keep, "ratio": t_keep / t_gather, "max_abs_diff": diff,
            "vocab": model.get_output_embeddings().weight.shape[0]}


def bench_training(model_dir: Path, threads: int, k: int = 8, steps: int = 2) -> dict[str, float]:
    """Full-batch GD steps on k demonstrations with all parameters trained (snapshot held, as in a job):
    FactoredVocab vs autograd's dense vocabulary gradient, and the FLOP/s reached vs torch.mm's."""
    torch.set_num_threads(threads)
    model, tok = models.load_model(model_dir, "cpu", "float32")
    # 2-8 reviews each: 20-62 tokens, the length range of real SST-2 demonstrations (mean 42 tokens)
    batch = training.canonical(demo_examples(tok, review_queries(k, lambda i: 2 + 2 * (i % 4))))
    names = training.select_parameters(model, "all")

    def run(opt, factored: bool) -> float:
        vocab = training.FactoredVocab(model)
        vocab.active = vocab.active and factored
        with vocab:
            def step() -> None:
                vocab.zero_grad(opt)
                training._backward(model, batch, 0, 256)
                vocab.step(opt)
            step()  # warm-up
            return timed(step, steps)

    with training.trainable(model, names) as params:  # the snapshot is held, as in a job
        opt = training.make_optimizer("gd", params, 0.0)  # lr 0: every step sees the same weights
        t_factored = run(opt, True)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the dense path's buffers
        t_dense = run(opt, False)
    tokens = sum(len(ex.ids) for ex in batch)
    return {"tokens": tokens, "factored_s": t_factored, "dense_s": t_dense, "ratio": t_dense / t_factored,
            "peak_rss_mb": rss, "flops": 3 * forward_flops_per_token(model) * tokens / t_factored, "peak": matmul_flops()}


def bench_eval(model_dir: Path, threads: int, n_queries: int = 64, batch_size: int = 16, batch_tokens: int = 1024):
    """Zero-shot evaluation of a fine-tuned model (`finetune.evaluate`) vs the ICL scorer on a k = 0
    prompt set (`forward.score_prompt_set`), the same queries: tokens/s of each."""
    from iclgd.finetune import run as finetune

    torch.set_num_threads(threads)
    model, tok = models.load_model(model_dir, "cpu", "float32")
    _, texts = bench_prompts(0, n_queries)
    ps = {"dataset": "bench", "k": 0, "seed": 0, "prefix": "", "classes": ["neg", "pos"],
          "label_words": ["negative", "positive"],
          "queries": [{"uid": i, "label": "pos", "query": q} for i, q in enumerate(texts)]}
    labels = forward.label_token_ids(tok, ps["label_words"])
    tokens = sum(len(forward.encode_query(tok, q, ps["prefix"])) for q in texts)
    evaluate = lambda: finetune.evaluate(model, tok, ps, ps["queries"], labels, {}, batch_size, batch_tokens)  # noqa: E731
    icl = lambda: forward.score_prompt_set(model, tok, ps, batch_size, {}, batch_tokens)  # noqa: E731
    evaluate(), icl()  # warm-up
    t_eval, t_icl = timed(evaluate, 2), timed(icl, 2)
    return {"tokens": tokens, "eval_tok_s": tokens / t_eval, "icl_tok_s": tokens / t_icl, "ratio": t_icl / t_eval}


def _finetune_child(model_dir: str, threads: int, queue) -> None:
    """One model's training and evaluation benchmark in a fresh process, so its peak RSS is its own."""
    queue.put({"train": bench_training(Path(model_dir), threads), "eval": bench_eval(Path(model_dir), threads)})


def report_finetune(name: str, model_dir: Path, threads: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_finetune_child, args=(str(model_dir), threads, queue))
    child.start()
    r = queue.get()
    child.join()
    t, e = r["train"], r["eval"]
    print(f"fine-tuning {name} at {threads} thread(s) (the pipeline's runtime.threads):")
    print(f"  GD step, k=8 ({t['tokens']} tokens), all parameters: {t['factored_s']:.2f} s factored vocabulary "
          f"gradient vs {t['dense_s']:.2f} s dense ({t['ratio']:.2f}x)")
    print(f"  training FLOP/s reached  {t['flops'] / 1e9:6.1f} GFLOP/s = {t['flops'] / t['peak']:.0%} of torch.mm's "
          f"{t['peak'] / 1e9:.1f} at {threads} thread(s)   (target >= 50%)")
    print(f"  zero-shot evaluation     {e['eval_tok_s']:6.0f} tok/s vs ICL scorer {e['icl_tok_s']:.0f} tok/s on the "
          f"same {e['tokens']} query tokens = {e['ratio']:.0%}   (target >= 80%)")
    print(f"  peak RSS, factored path  {t['peak_rss_mb'] / 1024:6.2f} GB (weights + snapshot + training steps, as a "
          f"fine-tuning job holds them; target < 4 GB)")


def report_scoring(model_dir: Path, args, runtime: dict, peak: float) -> None:
    model, tok = models.load_model(model_dir, "cpu", "float32")
    s = bench_scoring(model, tok, args.k, args.queries, runtime["batch_size"], runtime["batch_tokens"])
    reached = forward_flops_per_token(model) * s["computed_tokens"] / s["seconds_cached"]
    print(f"ICL scoring ({args.model}, k={args.k}, {args.queries} queries, {s['prompt_tokens']} prompt tokens):")
    print(f"  prefix-cached batched  {s['cached_tok_s']:9.0f} prompt tok/s")
    print(f"  naive full prompts     {s['naive_tok_s']:9.0f} prompt tok/s")
    print(f"  speed-up               {s['speedup']:9.2f}x   (max |diff| of label log-probs {s['max_abs_diff']:.1e})")
    print(f"  matmul FLOP/s reached  {reached / 1e9:9.1f} GFLOP/s = {reached / peak:.0%} of torch.mm peak")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="registry name (config/config.yaml models)")
    parser.add_argument("--k", type=int, default=8, help="demonstrations in the shared prefix")
    parser.add_argument("--queries", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-load", action="store_true", help="skip the GGUF dequantisation timing")
    parser.add_argument("--ft-epochs", type=int, default=10, help="epochs per fine-tuning run (0 skips it)")
    parser.add_argument("--ft-models", nargs="*", default=["smollm2-135m", "gemma3-270m"],
                        help="models whose training / evaluation throughput and peak RSS are measured")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(REPO)  # config.yaml with the schema's defaults (finetune.batch_tokens)
    registry, runtime = config["models"], config["runtime"]

    peak = matmul_flops()
    print(f"machine: torch {torch.__version__}, {args.threads} threads, float32 matmul {peak / 1e9:.1f} GFLOP/s")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = REPO / "resources" / "models" / args.model
        if not (model_dir / models.PROVENANCE).exists():  # not built by the pipeline yet
            model_dir = Path(tmp) / args.model
            models.prepare_model(args.model, registry, model_dir)
        report_scoring(model_dir, args, runtime, peak)
        h = bench_head(model_dir)
        print(f"output head at the last token only ({h['vocab']} vocab): {h['gather_s']:.2f} s vs logits at every "
              f"row's last position {h['keep_s']:.2f} s ({h['ratio']:.2f}x; max |diff| {h['max_abs_diff']:.1e})")
        if args.ft_epochs:
            f = bench_finetune(model_dir, args.k, args.ft_epochs)
            print(f"fine-tuning run (k={args.k}, {args.ft_epochs} epochs, full-batch GD on all parameters): "
                  f"in-memory restore {f['restore_s']:.1f} s vs reload from disk {f['reload_s']:.1f} s "
                  f"({f['ratio']:.2f}x; max |diff| of the trained weights {f['max_abs_diff']:.1e})")
            b = bench_packing(model_dir, args.k, epochs=3, budget=config["finetune"]["batch_tokens"])
            print(f"full-batch GD, k={args.k}, 3 epochs: length-packed micro-batches ({config['finetune']['batch_tokens']} "
                  f"tokens) {b['packed_s']:.1f} s vs one padded batch {b['padded_s']:.1f} s ({b['ratio']:.2f}x; "
                  f"{b['padding']:.0%} of the padded batch is padding; max |diff| of the weights {b['max_abs_diff']:.1e})")
        for name in args.ft_models:
            ft_dir = REPO / "resources" / "models" / name
            if not (ft_dir / models.PROVENANCE).exists():
                ft_dir = Path(tmp) / name
                models.prepare_model(name, registry, ft_dir)
            report_finetune(name, ft_dir, runtime["threads"])
    if not args.skip_load and registry[args.model]["source"].startswith("pypi-gguf"):
        t = bench_loading(args.model, registry)
        print(f"model load ({args.model}): GGUF dequantise {t['gguf_s']:.1f} s vs cached safetensors "
              f"{t['safetensors_s']:.2f} s ({t['ratio']:.0f}x)")


if __name__ == "__main__":
    main()

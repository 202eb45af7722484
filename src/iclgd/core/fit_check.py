"""Does every training setting fit the device? Checked when the workflow starts (`startup.check`).

A fine-tuning run that cannot fit fails hours into a run with CUDA's out-of-memory error, or, worse,
would have to be silently dropped. `check` asks `memory.finetune_bytes` for each (model, optimizer,
subset) the finetune grid and the order experiment will run and raises a ConfigError naming the key
(and the `skip` entry that would leave the run out) when its device bytes exceed
`runtime.device_memory_gb` (null: the GPU's memory when models run on CUDA, else this machine's RAM).
Parameter counts come from a meta-device model of the config.json (no weights) and are cached
(`context.cached`), so a parse with a warm cache imports no torch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from iclgd.core import context
from iclgd.core.config import ConfigError, Run

GB = 1e9


def device_gb(runtime: dict[str, Any], gpus: int) -> float | None:
    """runtime.device_memory_gb, else the first GPU's memory (nvidia-smi) or this machine's RAM; None if unknown."""
    if runtime.get("device_memory_gb"):
        return float(runtime["device_memory_gb"])
    try:
        if gpus:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
            return int(out.split()[0]) * 2**20 / GB
        meminfo = Path("/proc/meminfo").read_text().split("\n")[0]  # "MemTotal:  24567890 kB"
        return int(meminfo.split()[1]) * 1024 / GB
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def settings(run: Run) -> list[tuple[str, str, str, str, int]]:
    """(config key, model, optimizer, subset, micro-batch tokens, the `<key>.skip` entry that leaves it out) of
    every training run kind the config asks for (each study's `training` hook)."""
    return [setting for spec in run.specs for setting in spec.training(run)]


def _identity(model: str, models: dict[str, dict]) -> list[Any]:
    """What a model's parameter counts depend on: its (original's) spec and the config.json on disk, if any."""
    from iclgd.core.startup import model_dir

    spec, where = model_dir(model, models)
    found = where / "config.json"
    stamp = [str(found.resolve()), found.stat().st_size, found.stat().st_mtime_ns] if found.exists() else None
    tokenizer = models.get(spec.get("tokenizer", ""), {})
    return [spec, stamp, tokenizer]


def run_dtype(runtime: dict[str, Any], gpus: int) -> str:
    """The dtype model jobs run in: runtime.dtype, where `auto` is bf16 on a GPU and float32 on the CPU."""
    return runtime["dtype"] if runtime["dtype"] != "auto" else ("bfloat16" if gpus else "float32")


def _counts_and_shape(models: dict[str, dict], model: str):
    """(parameter counts, the text model's config) of `model` from its config.json, or None while unknown."""
    from iclgd.core import memory
    from iclgd.core.startup import PREPARED

    cfg = memory.model_config(models, model, ".", PREPARED / model)
    if cfg is None:
        return None
    return memory.parameter_counts(cfg), getattr(cfg, "get_text_config", lambda: cfg)()


def estimates(model: str, models: dict[str, dict], combos: list[tuple[str, str, int]], dtype: str) -> dict | None:
    """Device bytes of each (optimizer, subset, tokens) for `model` (cached), or None when its config is unknown."""
    def compute() -> dict[str, Any]:
        from iclgd.core import memory

        found = _counts_and_shape(models, model)
        if found is None:
            return {"bytes": None}
        counts, text = found
        return {"bytes": [memory.finetune_bytes(counts, s, o, dtype, t, text.num_hidden_layers, text.hidden_size,
                                                getattr(text, "intermediate_size", None)).device_bytes
                          for o, s, t in combos]}

    found = context.cached(["finetune-bytes", _identity(model, models), combos, dtype], compute)["bytes"]
    return None if found is None else dict(zip(map(tuple, combos), found))


def check(run: Run, config: dict[str, Any], gpus: int) -> list[str]:
    """ConfigError naming the key of the first training setting that exceeds the device; notes for the unknown."""
    runtime = config["runtime"]
    budget = device_gb(runtime, gpus)
    if budget is None:
        return ["device memory unknown (set runtime.device_memory_gb): fine-tuning settings not checked at start-up"]
    dtype = run_dtype(runtime, gpus)
    by_model: dict[str, list[tuple[str, str, str, int]]] = {}
    for key, model, opt, subset, tokens, entry in settings(run):
        by_model.setdefault(model, []).append((key, opt, subset, tokens, entry))
    notes = []
    for model, wanted in by_model.items():
        combos = sorted({(o, s, t) for _, o, s, t, _ in wanted})
        found = estimates(model, config["models"], [list(c) for c in combos], dtype)
        if found is None:
            notes.append(f"memory of {model!r} not checked at start-up: its config.json is not on disk before "
                         "rule prepare_model")
            continue
        for key, opt, subset, tokens, entry in wanted:
            need = found[(opt, subset, tokens)] / GB
            if need > budget:
                raise ConfigError(
                    f"config key {key}.optimizers: {opt} on {subset!r} of {model!r} in {dtype} needs ~{need:.0f} GB "
                    f"on the device, more than its {budget:.0f} GB (runtime.device_memory_gb); add {entry} to "
                    f"{key}.skip, or run on a larger device (README \"The published scale on one GPU\")")
    return notes


#: Host memory (MiB) a model job requests when its model's size is not known before rule prepare_model.
FALLBACK_MB = 8000


def host_mb(model: str, config: dict[str, Any], gpus: int, train: bool, dtype: str | None = None) -> int:
    """Host RAM (MiB) one job of `model` requests (rule resource mem_mb, hence Slurm's --mem): the process,
    the weights passing through the host while loading and, for training, the snapshot of every parameter
    a run may train (`memory.request_mb`; on the CPU the device part too). Cached like `estimates`."""
    runtime = config["runtime"]
    dtype = dtype or run_dtype(runtime, gpus)
    # the largest micro-batch any job forms: runtime's for scoring, each training block's own
    tokens = max(block["batch_tokens"] for block in config.values()
                 if isinstance(block, dict) and isinstance(block.get("batch_tokens"), int))

    def compute() -> dict[str, Any]:
        from iclgd.core import memory

        found = _counts_and_shape(config["models"], model)
        if found is None:
            return {"mb": None}
        counts, text = found
        shape = (text.num_hidden_layers, text.hidden_size)
        est = (memory.finetune_bytes(counts, "all", "adam" if train else "sgd", dtype, tokens, *shape) if train
               else memory.scoring_bytes(counts, dtype, tokens, *shape))
        return {"mb": memory.request_mb(est, "cuda" if gpus else "cpu")}

    found = context.cached(["host-mb", _identity(model, config["models"]), dtype, tokens, gpus, train], compute)
    return found["mb"] or FALLBACK_MB

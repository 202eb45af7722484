"""The shape run's memory side: the untrained control drawn in a process of its own (so its peak RSS is
its own), the run's overall peak, and `memory`'s budget for one 80 GB GPU beside the activation bytes
the probe measured."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path
from typing import Any

from transformers import LlamaConfig

from iclgd.core import memory, models
from iclgd.core.memory import dir_bytes


def _draw_untrained(name: str, registry: dict[str, dict], out: Path, dtype: str) -> tuple[dict[str, Any], float]:
    """In a fresh process: prepare the untrained control; its provenance and the process's peak RSS (GB)."""
    record = models.prepare_model(name, registry, out, device="cpu", dtype=dtype)
    return {k: record[k] for k in ("like", "seed", "device", "dtype")}, round(memory._status_gb("VmHWM"), 3)


def untrained_phase(name: str, registry: dict[str, dict], out: Path, dtype: str) -> dict[str, Any]:
    """The registry's untrained control `name` through `models.prepare_model`, drawn in `dtype` on the CPU
    and written to `out`, in a spawned process: what the draw itself holds is then its own peak RSS, not
    mixed with this process's pages of the scored model (still mapped from its safetensors files after the
    model object is freed: the loaded tensors stay alive, referenced from outside Python)."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        provenance, peak = pool.submit(_draw_untrained, name, registry, Path(out), dtype).result()
    return {"provenance": provenance, "child_peak_rss_gb": peak, **dir_bytes(out)}


def peak_rss_gb(phases: dict[str, dict[str, Any]]) -> float:
    """The run's peak RSS over its phases: a phase's own, or its spawned child's where it drew in one."""
    return max(p.get("child_peak_rss_gb", p["peak_rss_gb"]) for p in phases.values())


def memory_budget(config: LlamaConfig, train: dict[str, Any], batch_tokens: int = 256) -> dict[str, Any]:
    """`memory.gpu_budget` for this model on one 80 GB GPU, beside the activation bytes per token per
    layer the probe measured and `memory.activation_bytes`' formula for them."""
    h, inter = config.hidden_size, config.intermediate_size
    dtype = train["weight_dtype"].removeprefix("torch.")
    formula = memory.activation_bytes(1, 1, h, dtype, inter) - memory.activation_bytes(1, 0, h, dtype, inter)
    measured = train["saved_activation_bytes_all"] / (train["padded_tokens"] * train["layers"])
    return memory.gpu_budget(config, batch_tokens) | {"activation_bytes_per_token_per_layer": {
        "measured": round(measured), "formula": formula, "dtype": dtype}}

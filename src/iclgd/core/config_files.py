"""Reading config files as the Snakefile does: --config values typed by the schema, overrides merged, every
default filled (`load_config`, for tests and tools), relative paths found (`repo_path`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def repo_path(path: str, basedir: str | Path) -> Path:
    """Relative paths are taken from the working directory, falling back to the repository."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return Path(basedir) / candidate


def typed(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Give --config values their schema's types, in place (before validation).

    Snakemake parses `--config key=value` with YAML's BaseLoader, so `--config 'icl={n_demos: [0, 2]}'`
    arrives as strings; a string where the schema allows none is read as YAML. Config files are typed
    already and pass unchanged.
    """
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    return _typed(config, schema, schema)


def _typed(value: Any, node: dict[str, Any], root: dict[str, Any]) -> Any:
    if "$ref" in node:  # local references only ("#/$defs/name")
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if isinstance(value, str):
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else types
        if types and "string" not in types:
            import yaml

            try:
                loaded = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            if isinstance(loaded, str) and "number" in types:  # YAML 1.1 reads 1e-3 (no dot) as a string
                try:
                    return float(loaded)
                except ValueError:
                    return value
            return loaded
        return value
    if isinstance(value, dict):
        for key in value:
            sub = node.get("properties", {}).get(key, node.get("additionalProperties"))
            if isinstance(sub, dict):
                value[key] = _typed(value[key], sub, root)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value[:] = [_typed(item, node["items"], root) for item in value]
    return value


def load_config(repo: str | Path, *overrides: str | Path | dict) -> dict[str, Any]:
    """config/config.yaml, then each override (a config file or a dict, merged key by key as Snakemake
    merges --configfile and --config), typed and validated against config/schema.yaml with every default
    filled: the config the Snakefile sees. For tests and tools; imports Snakemake."""
    import yaml
    from snakemake.utils import update_config, validate

    repo = Path(repo)
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text(encoding="utf-8"))
    for override in overrides:
        if not isinstance(override, dict):
            override = yaml.safe_load(Path(override).read_text(encoding="utf-8")) or {}
        update_config(config, override)
    typed(config, repo / "config" / "schema.yaml")
    validate(config, str(repo / "config" / "schema.yaml"), set_default=True)
    return config

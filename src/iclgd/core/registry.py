"""The dataset registry (`config/datasets.yaml`): loading, the schema check (`iclgd.core.registry_schema`)
and the cross-key checks a schema cannot express.

Light on purpose (yaml and jsonschema only), so the workflow can check a config's dataset names at
parse time without importing pandas; `iclgd.core.data` reads the files a spec points at.
"""

from __future__ import annotations

import codecs
import string
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from iclgd.core.registry_schema import COMMON_OPTIONS, FORMAT_OPTIONS, READER_OPTIONS, SPEC_SCHEMA

class DataError(ValueError):
    """Bad input data or registry; the message names file:line or the registry key."""


# --------------------------------------------------------------------------- registry


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which plain YAML silently overwrites."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DataError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_registry(path: str | Path) -> dict[str, dict]:
    """Parse and validate the dataset registry; each spec gets `name` set to its key."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise DataError(f"{path}: dataset registry not found") from None
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a non-empty mapping of dataset name -> spec")
    registry = {}
    for name, spec in raw.items():
        if not isinstance(name, str):
            raise DataError(f"{path}: dataset name {name!r} must be a string")
        registry[name] = validate_spec(name, spec, where=str(path))
    return registry


def validate_spec(name: str, spec: Any, where: str = "registry") -> dict:
    """Schema check plus the cross-key rules a schema cannot express; returns a copy with `name`."""
    prefix = f"{where}: dataset '{name}'"
    if not isinstance(spec, dict):
        raise DataError(f"{prefix}: spec must be a mapping, got {type(spec).__name__}")
    _check_str_keys(spec, prefix, name)
    errors = list(jsonschema.Draft202012Validator(SPEC_SCHEMA).iter_errors(spec))
    if errors:
        raise DataError(f"{prefix}: {_describe(max(errors, key=jsonschema.exceptions.relevance), name)}")
    spec = {**spec, "name": spec.get("name", name)}
    try:
        _check_semantics(spec)
    except DataError as exc:
        raise DataError(f"{prefix}: {exc}") from None
    return spec


def _check_str_keys(node: Any, prefix: str, at: str) -> None:
    """YAML turns `0:` or `yes:` into int/bool keys; insist on quoted strings instead."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise DataError(f"{prefix}: key {key!r} at {at} must be a string (quote it in YAML)")
            _check_str_keys(value, prefix, f"{at}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_str_keys(value, prefix, f"{at}[{i}]")


def _describe(error: jsonschema.ValidationError, name: str) -> str:
    """Short jsonschema message with the dotted key path it applies to."""
    while error.context:  # oneOf: explain the closest branch instead of "not valid under any"
        same_type = [e for e in error.context if not _wrong_type(e)]
        if not same_type:
            break
        error = max(same_type, key=lambda e: len(e.absolute_path))  # the branch that matched furthest
    at = ".".join([name, *map(str, error.absolute_path)])
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if unknown:
            allowed = ", ".join(sorted(error.schema.get("properties", {}))) or "(none)"
            return f"unknown key {unknown[0]!r} at {at} (allowed: {allowed})"
    return f"{at}: {error.message}"


def _wrong_type(error: jsonschema.ValidationError) -> bool:
    """True when a schema branch failed only because the value has another type."""
    if error.validator == "type":
        return True
    return bool(error.context) and all(_wrong_type(e) for e in error.context)


def _check_semantics(spec: dict) -> None:
    fields, classes = spec["fields"], spec["classes"]
    _check_labels(spec, classes)
    _check_template(spec["template"], fields)
    files = spec["files"]
    if "all" in files:
        if set(files) != {"all"}:
            raise DataError("files: use either {train, test} or a single 'all' split, not both")
        if "holdout" not in spec:
            raise DataError("files.all needs a 'holdout' entry saying how the test pool is carved out")
    elif set(files) != {"train", "test"}:
        raise DataError(f"files: needs both 'train' and 'test' (got {sorted(files)})")
    elif "holdout" in spec:
        raise DataError("holdout: only allowed with a single 'all' split")
    used: set[str] = set()
    for split in files:
        opts = _split_options(spec, split)
        used.update(opts["paths"])
        if "test_lines" in spec.get("holdout", {}) and split == "all" and len(opts["paths"]) != 1:
            raise DataError("holdout.test_lines needs files.all to be a single file (line numbers are per file)")
    for rel in used:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise DataError(f"files: {rel!r} must be a relative path inside the mirror dir")
    digests = set(spec["sha256"])
    if used - digests:
        raise DataError(f"sha256: no digest for {sorted(used - digests)[0]!r}")
    if digests - used:
        raise DataError(f"sha256: {sorted(digests - used)[0]!r} is not used by any split")
    if "hub" in spec:
        _check_hub(spec)


def _check_labels(spec: dict, classes: list[str]) -> None:
    for raw, cls in spec["label_map"].items():
        if cls not in classes:
            raise DataError(f"label_map.{raw}: {cls!r} is not one of classes {classes}")
    unmapped = set(classes) - set(spec["label_map"].values())
    if unmapped:
        raise DataError(f"label_map: no raw label maps to class {sorted(unmapped)[0]!r}")
    verbalizer = spec["verbalizer"]
    if set(verbalizer) != set(classes):
        raise DataError(f"verbalizer: keys must be exactly the classes {classes}, got {sorted(verbalizer)}")
    first_words: dict[str, str] = {}
    for cls in classes:
        word = verbalizer[cls].split()[0] if verbalizer[cls].strip() else ""
        if not word or word in first_words:
            raise DataError(
                f"verbalizer.{cls}: label word {verbalizer[cls]!r} must be non-empty and differ in its "
                f"first word from every other class" + (f" (clashes with {first_words[word]!r})" if word else "")
            )
        first_words[word] = cls


def _check_template(template: str, fields: list[str]) -> None:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise DataError(f"template: {exc} (write literal braces as {{{{ and }}}})") from None
    if names != set(fields):
        raise DataError(f"template: placeholders {sorted(names)} must be exactly the fields {fields}")
    if template != template.rstrip():
        raise DataError("template: must not end in whitespace; the prompt stage appends ' ' + label word")


def _check_hub(spec: dict) -> None:
    hub, fields = spec["hub"], spec["fields"]
    splits = set(hub["splits"])
    if splits not in ({"train", "test"}, {"all"}):
        raise DataError(f"hub.splits: needs {{train, test}} or {{all}}, got {sorted(splits)}")
    if splits == {"all"} and "holdout" not in spec:
        raise DataError("hub.splits.all needs a 'holdout' entry")
    extra = set(hub.get("text_fields", {})) - set(fields)
    if extra:
        raise DataError(f"hub.text_fields: {sorted(extra)[0]!r} is not one of fields {fields}")
    for cls in hub.get("label_names", []):
        if cls not in spec["classes"]:
            raise DataError(f"hub.label_names: {cls!r} is not one of classes {spec['classes']}")


def _split_options(spec: dict, split: str) -> dict:
    """Effective reader options for one split: spec-level defaults overridden by the split mapping."""
    entry = spec["files"][split]
    if not isinstance(entry, dict):
        entry = {"paths": entry}
    opts = {key: spec[key] for key in READER_OPTIONS if key in spec}
    opts.update({key: value for key, value in entry.items() if key in READER_OPTIONS})
    opts.setdefault("encoding", "utf-8")
    fmt, at = opts["format"], f"files.{split}"
    if fmt == "parallel_lines":
        if "paths" in entry or not {"text", "labels"} <= set(entry):
            raise DataError(f"{at}: format parallel_lines needs a mapping {{text: path, labels: path}}")
        opts["paths"], opts["text"], opts["labels"] = [entry["text"], entry["labels"]], entry["text"], entry["labels"]
    else:
        if "paths" not in entry or {"text", "labels"} & set(entry):
            raise DataError(f"{at}: format {fmt} needs 'paths' (a path or a list of paths)")
        opts["paths"] = [entry["paths"]] if isinstance(entry["paths"], str) else list(entry["paths"])
    misplaced = set(opts) - COMMON_OPTIONS - FORMAT_OPTIONS[fmt] - {"paths", "text", "labels", "encoding"}
    if misplaced:
        raise DataError(f"{at}: option {sorted(misplaced)[0]!r} does not apply to format {fmt}")
    try:
        codecs.lookup(opts["encoding"])
    except LookupError:
        raise DataError(f"{at}: unknown encoding {opts['encoding']!r}") from None
    fields = spec["fields"]
    if fmt in ("label_text", "at_suffix", "parallel_lines") and len(fields) != 1:
        raise DataError(f"{at}: format {fmt} carries one text field, but fields are {fields}")
    if fmt in ("csv", "jsonl"):
        field_map = opts.get("field_map", {})
        if set(field_map) - set(fields):
            raise DataError(f"{at}.field_map: {sorted(set(field_map) - set(fields))[0]!r} is not one of {fields}")
        opts["sources"] = {field: _as_list(field_map.get(field, field)) for field in fields}
        opts.setdefault("label_key", "label")
        opts.setdefault("join", " ")
    if fmt == "csv":
        if "columns" not in opts:
            raise DataError(f"{at}: format csv needs 'columns' (the files have no header)")
        needed = {opts["label_key"], *(column for columns in opts["sources"].values() for column in columns)}
        if needed - set(opts["columns"]):
            raise DataError(f"{at}: column {sorted(needed - set(opts['columns']))[0]!r} is not in columns")
    opts.setdefault("label_sep", " ")
    return opts


def _as_list(names: str | list[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)

"""Data preparation: turn raw benchmark files into checked train/test pools.

Everything dataset-specific lives in the registry (`config/datasets.yaml`); this module only
knows file *formats*, so adding a dataset of a supported format is a config change. Raw files
come from a read-only mirror and are verified against the registry's sha256 before parsing,
so a result can always be traced to exact bytes. Every problem with the input raises
`DataError` naming the file and line (or the registry key) instead of skipping rows.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import os
import string
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jsonschema
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

log = logging.getLogger(__name__)

FORMATS = ["label_text", "csv", "jsonl", "at_suffix", "parallel_lines"]
SPLITS = ["train", "test", "all"]
MIRROR_KEY = "data.mirror_dir"

# Reader options: allowed at the top of a spec (defaults) and inside a split mapping (overrides).
# Which options make sense for which format; `encoding` and `label_split` apply to all.
_COMMON_OPTIONS = {"format", "encoding", "label_split"}
_FORMAT_OPTIONS = {
    "label_text": {"label_sep"},
    "csv": {"columns", "label_key", "field_map", "join"},
    "jsonl": {"label_key", "field_map", "join"},
    "at_suffix": set(),
    "parallel_lines": set(),
}

_NAMES = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ]
}
_READER = {
    "format": {"enum": FORMATS},
    "encoding": {"type": "string", "minLength": 1},
    "label_split": {"type": "string", "minLength": 1},
    "label_sep": {"type": "string", "minLength": 1},
    "columns": {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": True},
    "label_key": {"type": "string", "minLength": 1},
    "field_map": {"type": "object", "additionalProperties": _NAMES},
    "join": {"type": "string"},
}
_IDENT = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}
_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "path": {"type": "string", "minLength": 1},
        "paths": {
            "oneOf": [
                {"$ref": "#/$defs/path"},
                {"type": "array", "items": {"$ref": "#/$defs/path"}, "minItems": 1},
            ]
        },
        "split": {
            "oneOf": [
                {"$ref": "#/$defs/paths"},
                {
                    "type": "object",
                    "properties": {
                        "paths": {"$ref": "#/$defs/paths"},
                        "text": {"$ref": "#/$defs/path"},
                        "labels": {"$ref": "#/$defs/path"},
                        **_READER,
                    },
                    "additionalProperties": False,
                },
            ]
        },
    },
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        **_READER,
        "files": {
            "type": "object",
            "properties": {s: {"$ref": "#/$defs/split"} for s in SPLITS},
            "additionalProperties": False,
            "minProperties": 1,
        },
        "sha256": {
            "type": "object",
            "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "minProperties": 1,
        },
        "fields": {"type": "array", "items": _IDENT, "minItems": 1, "uniqueItems": True},
        "classes": {"type": "array", "items": _IDENT, "minItems": 2, "uniqueItems": True},
        "label_map": {"type": "object", "additionalProperties": _IDENT, "minProperties": 1},
        "verbalizer": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
        "template": {"type": "string", "minLength": 1},
        "allow_empty_text": {"type": "boolean"},
        "holdout": {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {
                        "test_lines": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "array",
                                "items": {"type": "integer", "minimum": 1},
                                "minItems": 2,
                                "maxItems": 2,
                            },
                        }
                    },
                    "required": ["test_lines"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {
                        "test_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                        "seed": {"type": "integer"},
                    },
                    "required": ["test_fraction", "seed"],
                    "additionalProperties": False,
                },
            ]
        },
        "hub": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "splits": {
                    "type": "object",
                    "properties": {s: {"type": "string"} for s in SPLITS},
                    "additionalProperties": False,
                    "minProperties": 1,
                },
                "text_fields": {"type": "object", "additionalProperties": _NAMES},
                "label_column": {"type": "string", "minLength": 1},
                "label_names": {"type": "array", "items": _IDENT, "minItems": 2},
            },
            "required": ["path", "splits", "label_column"],
            "additionalProperties": False,
        },
    },
    "required": ["format", "files", "sha256", "fields", "classes", "label_map", "verbalizer", "template"],
    "additionalProperties": False,
}


class DataError(ValueError):
    """Bad input data or registry; the message names file:line or the registry key."""


class _Record(NamedTuple):
    idx: int  # 1-based row number in the source file
    line: int  # 1-based line where the row starts (differs from idx only for multi-line CSV)
    label: Any
    values: dict[str, Any]


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
    errors = list(jsonschema.Draft202012Validator(_SCHEMA).iter_errors(spec))
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
    opts = {k: spec[k] for k in _READER if k in spec}
    opts.update({k: v for k, v in entry.items() if k in _READER})
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
    misplaced = set(opts) - _COMMON_OPTIONS - _FORMAT_OPTIONS[fmt] - {"paths", "text", "labels", "encoding"}
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
        opts["sources"] = {f: _as_list(field_map.get(f, f)) for f in fields}
        opts.setdefault("label_key", "label")
        opts.setdefault("join", " ")
    if fmt == "csv":
        if "columns" not in opts:
            raise DataError(f"{at}: format csv needs 'columns' (the files have no header)")
        needed = {opts["label_key"], *(c for cols in opts["sources"].values() for c in cols)}
        if needed - set(opts["columns"]):
            raise DataError(f"{at}: column {sorted(needed - set(opts['columns']))[0]!r} is not in columns")
    opts.setdefault("label_sep", " ")
    return opts


def _as_list(names: str | list[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


# --------------------------------------------------------------------------- reading


def _read_bytes(spec: dict, mirror_dir: Path, rel: str, split: str) -> bytes:
    """Read one mirror file and check its digest, so results trace to exact bytes."""
    path = mirror_dir / rel
    if not mirror_dir.is_dir():
        raise DataError(f"mirror dir {mirror_dir} does not exist (it is set by config key {MIRROR_KEY})")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path}: file not found (dataset '{spec['name']}', split '{split}'); "
            f"the mirror dir {mirror_dir} is set by config key {MIRROR_KEY}"
        ) from None
    expected, actual = spec["sha256"][rel], hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DataError(f"{path}: sha256 mismatch: expected {expected}, got {actual}")
    return data


def _decode(data: bytes, encoding: str, path: Path) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: cannot decode as {encoding}: {exc.reason} (set 'encoding')") from None


def _lines(text: str) -> list[str]:
    """Split on "\\n" only: str.splitlines() would also split inside sentences at U+0085 (cp1252 0x85)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _nonblank(lines: list[str], path: Path) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"{path}:{n}: empty line")
        yield n, line


def _parse_label_text(text: str, opts: dict, fields: list[str], path: Path) -> Iterator[_Record]:
    sep = opts["label_sep"]
    for n, line in _nonblank(_lines(text), path):
        label, found, body = line.partition(sep)
        if not found:
            raise DataError(f"{path}:{n}: no {sep!r} between label and text")
        yield _Record(n, n, label, {fields[0]: body})


def _parse_at_suffix(text: str, opts: dict, fields: list[str], path: Path) -> Iterator[_Record]:
    for n, line in _nonblank(_lines(text), path):
        body, found, label = line.rpartition("@")
        if not found:
            raise DataError(f"{path}:{n}: no '@' before the label")
        yield _Record(n, n, label, {fields[0]: body})


def _parse_jsonl(text: str, opts: dict, fields: list[str], path: Path) -> Iterator[_Record]:
    for n, line in _nonblank(_lines(text), path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: bad JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
        yield _pick(row, opts, n, n, path)


def _parse_csv(text: str, opts: dict, fields: list[str], path: Path) -> Iterator[_Record]:
    columns = opts["columns"]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    row_no, start = 0, 1
    try:
        for row in reader:
            row_no += 1
            if len(row) != len(columns):
                raise DataError(f"{path}:{start}: expected {len(columns)} columns {columns}, got {len(row)}")
            yield _pick(dict(zip(columns, row)), opts, row_no, start, path)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: bad CSV: {exc}") from None


def _pick(row: dict, opts: dict, idx: int, line: int, path: Path) -> _Record:
    """Label and text fields from one jsonl/csv row; several source keys are joined."""
    if opts["label_key"] not in row:
        raise DataError(f"{path}:{line}: missing label key {opts['label_key']!r}")
    values = {}
    for field, keys in opts["sources"].items():
        parts = []
        for key in keys:
            if key not in row:
                raise DataError(f"{path}:{line}: missing key {key!r} (for field {field!r})")
            if not isinstance(row[key], str):
                raise DataError(f"{path}:{line}: key {key!r} must be a string, got {type(row[key]).__name__}")
            parts.append(row[key].strip())
        values[field] = opts["join"].join(parts)
    return _Record(idx, line, row[opts["label_key"]], values)


_PARSERS = {
    "label_text": _parse_label_text,
    "at_suffix": _parse_at_suffix,
    "jsonl": _parse_jsonl,
    "csv": _parse_csv,
}


def _parse_parallel(spec: dict, mirror_dir: Path, opts: dict, split: str) -> Iterator[_Record]:
    """Text file and label file aligned by line number (tweet_eval style)."""
    texts, labels = (
        _lines(_decode(_read_bytes(spec, mirror_dir, opts[k], split), opts["encoding"], mirror_dir / opts[k]))
        for k in ("text", "labels")
    )
    if len(texts) != len(labels):
        raise DataError(
            f"{mirror_dir / opts['text']} has {len(texts)} lines but "
            f"{mirror_dir / opts['labels']} has {len(labels)}; they must align line by line"
        )
    field = spec["fields"][0]
    for n, (text, label) in enumerate(zip(texts, labels), 1):
        yield _Record(n, n, label, {field: text})


def _records_to_frame(records: Iterable[_Record], spec: dict, opts: dict, rel: str, path: Path) -> pd.DataFrame:
    """Map raw labels to class names and strip texts, failing on the first bad row."""
    label_map, fields = spec["label_map"], spec["fields"]
    allow_empty = spec.get("allow_empty_text", False)
    cut = opts.get("label_split")
    rows = []
    for rec in records:
        raw = str(rec.label).strip()
        if cut:
            raw = raw.split(cut, 1)[0]
        if raw not in label_map:
            raise DataError(f"{path}:{rec.line}: label {raw!r} is not in label_map (known: {sorted(label_map)})")
        values = {f: rec.values[f].strip() for f in fields}
        for f, v in values.items():
            if not v and not allow_empty:
                raise DataError(f"{path}:{rec.line}: empty text in field {f!r} (set allow_empty_text to keep it)")
        rows.append({"idx": rec.idx, "source": rel, "label": label_map[raw], **values})
    return _frame(rows, fields)


def _frame(rows: list[dict], fields: list[str]) -> pd.DataFrame:
    columns = ["idx", "source", "label", *fields]
    df = pd.DataFrame(rows, columns=columns)
    return df.astype({"idx": "int64", **{c: "str" for c in columns[1:]}})


def read_split(spec: dict, mirror_dir: str | Path, split: str) -> pd.DataFrame:
    """Verify and parse one split's raw file(s), concatenated in listed order.

    Columns: idx (1-based row number in its source file), source (path relative to the mirror),
    label (class name), then one column per field.
    """
    mirror_dir = Path(mirror_dir)
    if split not in spec["files"]:
        raise DataError(f"dataset '{spec['name']}': no split {split!r} in files (has {sorted(spec['files'])})")
    opts = _split_options(spec, split)
    if opts["format"] == "parallel_lines":
        return _records_to_frame(
            _parse_parallel(spec, mirror_dir, opts, split), spec, opts, opts["text"], mirror_dir / opts["text"]
        )
    parser = _PARSERS[opts["format"]]
    frames = []
    for rel in opts["paths"]:
        path = mirror_dir / rel
        text = _decode(_read_bytes(spec, mirror_dir, rel, split), opts["encoding"], path)
        frames.append(_records_to_frame(parser(text, opts, spec["fields"], path), spec, opts, rel, path))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


# --------------------------------------------------------------------------- hub


def _read_hub(spec: dict) -> dict[str, pd.DataFrame]:
    """Load the hub splits named in spec['hub'] into read_split-shaped frames."""
    name, hub = spec["name"], spec.get("hub")
    if not hub:
        raise DataError(f"dataset '{name}': source='hub' needs a 'hub' entry in the dataset registry")
    try:
        import datasets
    except ImportError:
        raise DataError("source='hub' needs the `datasets` package") from None
    frames = {}
    for split, hub_split in hub["splits"].items():
        source = f"hub:{hub['path']}" + (f"/{hub['name']}" if "name" in hub else "") + f":{hub_split}"
        try:
            ds = datasets.load_dataset(hub["path"], hub.get("name"), split=hub_split)
        except Exception as exc:  # network, auth, unknown id: all mean "cannot use the hub here"
            raise DataError(f"dataset '{name}': cannot load {source}: {type(exc).__name__}: {exc}") from None
        frames[split] = _hub_frame(ds.to_pandas(), spec, source)
    return frames


def _hub_frame(table: pd.DataFrame, spec: dict, source: str) -> pd.DataFrame:
    hub, fields = spec["hub"], spec["fields"]
    text_fields = {f: _as_list(hub.get("text_fields", {}).get(f, f)) for f in fields}
    names, label_map = hub.get("label_names"), spec["label_map"]
    missing = ({hub["label_column"]} | {c for cols in text_fields.values() for c in cols}) - set(table.columns)
    if missing:
        raise DataError(f"{source}: no column {sorted(missing)[0]!r} (has {sorted(table.columns)})")
    rows = []
    for n, row in enumerate(table.to_dict("records"), 1):
        raw = row[hub["label_column"]]
        if names is not None and isinstance(raw, (int, np.integer)) and 0 <= raw < len(names):
            label = names[raw]
        elif str(raw) in label_map:
            label = label_map[str(raw)]
        else:
            raise DataError(f"{source}:{n}: label {raw!r} is not covered by hub.label_names or label_map")
        values = {f: spec.get("join", " ").join(str(row[c]).strip() for c in cols) for f, cols in text_fields.items()}
        rows.append({"idx": n, "source": source, "label": label, **values})
    return _frame(rows, fields)


# --------------------------------------------------------------------------- pools


def _holdout(df: pd.DataFrame, spec: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carve a fixed test pool out of a single 'all' split (same for every experiment seed)."""
    holdout = spec["holdout"]
    if "test_lines" in holdout:
        mask = np.zeros(len(df), dtype=bool)
        for lo, hi in holdout["test_lines"]:
            if lo > hi or hi > df["idx"].max():
                raise DataError(
                    f"dataset '{spec['name']}': holdout.test_lines range [{lo}, {hi}] is empty or "
                    f"beyond the {df['idx'].max()} rows of {df['source'].iloc[0]}"
                )
            mask |= df["idx"].between(lo, hi).to_numpy()
    else:
        rng = np.random.default_rng(holdout["seed"])
        mask = np.zeros(len(df), dtype=bool)
        for cls in spec["classes"]:  # stratified: every class keeps its share
            pos = np.flatnonzero(df["label"].to_numpy() == cls)
            k = int(round(holdout["test_fraction"] * len(pos)))
            mask[rng.choice(pos, size=k, replace=False)] = True
    return df[~mask].reset_index(drop=True), df[mask].reset_index(drop=True)


def _uids(df: pd.DataFrame) -> pd.Series:
    """Integer id from (source, idx): the same example keeps its uid across seeds and n_test."""
    keys = df["source"] + ":" + df["idx"].astype(str)
    return keys.map(lambda k: int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big") >> 1).astype("int64")


def _with_uid(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    df.insert(0, "uid", _uids(df))
    return df


def _drop_empty(df: pd.DataFrame, fields: list[str], name: str, pool: str) -> pd.DataFrame:
    """Rows with an empty field (kept by read_split only under allow_empty_text) cannot be prompted."""
    empty = (df[fields] == "").any(axis=1)
    if empty.any():
        log.info("%s: dropped %d %s rows with empty text", name, int(empty.sum()), pool)
    return df[~empty]


def prepare_dataset(
    spec: dict, mirror_dir: str | Path, n_test: int, seed: int, source: str = "mirror"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train_pool, test) for one dataset.

    test: a default_rng(seed) subset of min(n_test, len) rows of the test pool, in file order.
    train_pool: the train rows minus any whose field values equal a test-pool row, and minus
    exact duplicates (first kept), so demonstrations can never leak test examples.
    Both carry a `uid` derived from (source, idx).
    """
    name, fields = spec["name"], spec["fields"]
    if n_test < 0:
        raise DataError(f"dataset '{name}': n_test must be >= 0, got {n_test}")
    if source == "mirror":
        frames = {split: read_split(spec, mirror_dir, split) for split in spec["files"]}
    elif source == "hub":
        frames = _read_hub(spec)
    else:
        raise DataError(f"dataset '{name}': source must be 'mirror' or 'hub', got {source!r}")
    train, pool = _holdout(frames["all"], spec) if "all" in frames else (frames["train"], frames["test"])
    train, pool = _drop_empty(train, fields, name, "train"), _drop_empty(pool, fields, name, "test")

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(pool), size=min(n_test, len(pool)), replace=False))
    test = pool.iloc[chosen]

    test_keys = set(pool[fields].itertuples(index=False, name=None))
    overlap = np.array([key in test_keys for key in train[fields].itertuples(index=False, name=None)], dtype=bool)
    duplicate = train.duplicated(subset=fields).to_numpy()
    if overlap.any() or duplicate.any():
        log.info(
            "%s: dropped %d train rows equal to a test-pool row and %d duplicates",
            name,
            int(overlap.sum()),
            int((duplicate & ~overlap).sum()),
        )
    train = train[~overlap & ~duplicate]
    return _with_uid(train), _with_uid(test)


def write_split(df: pd.DataFrame, path: str | Path) -> None:
    """Write parquet deterministically (same frame -> same bytes) and atomically (temp + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The JSON schema of one dataset registry entry (`config/datasets.yaml`) and the reader options per
raw-file format: plain data, so `iclgd.core.registry` can validate specs against it at parse time.
"""

from __future__ import annotations

from typing import Any

FORMATS = ["label_text", "csv", "jsonl", "at_suffix", "parallel_lines"]
SPLITS = ["train", "test", "all"]

# Reader options: allowed at the top of a spec (defaults) and inside a split mapping (overrides).
# Which options make sense for which format; `encoding` and `label_split` apply to all.
COMMON_OPTIONS = {"format", "encoding", "label_split"}
FORMAT_OPTIONS = {
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
READER_OPTIONS = {
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
SPEC_SCHEMA: dict[str, Any] = {
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
                        **READER_OPTIONS,
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
        **READER_OPTIONS,
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

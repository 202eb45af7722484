"""Raw file formats of the data mirror: verified reading, decoding and one parser per registry `format`.

Each parser turns a file's text into `Record`s (row number, line, raw label, text fields) and raises
`DataError` naming the file and line on the first malformed row; `iclgd.core.data` maps the records to
class names and frames. Bytes are checked against the registry's sha256 before anything is parsed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from iclgd.core.registry import DataError

#: The config key that sets the mirror dir (named in errors about missing files).
MIRROR_KEY = "data.mirror_dir"


class Record(NamedTuple):
    """One raw row: where it stands in its file, its raw label and its text fields."""

    idx: int  # 1-based row number in the source file
    line: int  # 1-based line where the row starts (differs from idx only for multi-line CSV)
    label: Any
    values: dict[str, Any]


def read_verified(spec: dict, mirror_dir: Path, rel: str, split: str) -> bytes:
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


def decode(data: bytes, encoding: str, path: Path) -> str:
    """The file's text; a decoding error names the line, so the registry's `encoding` can be fixed."""
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
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"{path}:{line_no}: empty line")
        yield line_no, line


def _parse_label_text(text: str, opts: dict, fields: list[str], path: Path) -> Iterator[Record]:
    sep = opts["label_sep"]
    for line_no, line in _nonblank(_lines(text), path):
        label, found, body = line.partition(sep)
        if not found:
            raise DataError(f"{path}:{line_no}: no {sep!r} between label and text")
        yield Record(line_no, line_no, label, {fields[0]: body})


def _parse_at_suffix(text: str, opts: dict, fields: list[str], path: Path) -> Iterator[Record]:
    for line_no, line in _nonblank(_lines(text), path):
        body, found, label = line.rpartition("@")
        if not found:
            raise DataError(f"{path}:{line_no}: no '@' before the label")
        yield Record(line_no, line_no, label, {fields[0]: body})


def _parse_jsonl(text: str, opts: dict, fields: list[str], path: Path) -> Iterator[Record]:
    for line_no, line in _nonblank(_lines(text), path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: bad JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
        yield _pick(row, opts, line_no, line_no, path)


def _parse_csv(text: str, opts: dict, fields: list[str], path: Path) -> Iterator[Record]:
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


def _pick(row: dict, opts: dict, idx: int, line: int, path: Path) -> Record:
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
    return Record(idx, line, row[opts["label_key"]], values)


#: The parser of each single-file format (parallel_lines reads two files: `parse_parallel`).
PARSERS = {
    "label_text": _parse_label_text,
    "at_suffix": _parse_at_suffix,
    "jsonl": _parse_jsonl,
    "csv": _parse_csv,
}


def parse_parallel(spec: dict, mirror_dir: Path, opts: dict, split: str) -> Iterator[Record]:
    """Text file and label file aligned by line number (tweet_eval style)."""
    texts, labels = (
        _lines(decode(read_verified(spec, mirror_dir, opts[key], split), opts["encoding"], mirror_dir / opts[key]))
        for key in ("text", "labels")
    )
    if len(texts) != len(labels):
        raise DataError(
            f"{mirror_dir / opts['text']} has {len(texts)} lines but "
            f"{mirror_dir / opts['labels']} has {len(labels)}; they must align line by line"
        )
    field = spec["fields"][0]
    for line_no, (text, label) in enumerate(zip(texts, labels), 1):
        yield Record(line_no, line_no, label, {field: text})

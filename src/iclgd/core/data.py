"""Data preparation: turn raw benchmark files into checked train/test pools.

Everything dataset-specific lives in the registry (`config/datasets.yaml`); this module and its
parsers (`iclgd.core.data_formats`) only know file *formats*, so adding a dataset of a supported
format is a config change. Raw files come from a read-only mirror and are verified against the
registry's sha256 before parsing, so a result can always be traced to exact bytes. Every problem with
the input raises `DataError` naming the file and line (or the registry key) instead of skipping rows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from iclgd.core.data_formats import PARSERS, Record, decode, parse_parallel, read_verified

# The registry (schema, loading, checks) lives in iclgd.core.registry and iclgd.core.registry_schema,
# light enough for parse time; its names stay importable from here.
from iclgd.core.registry import (  # noqa: F401
    DataError,
    _as_list,
    _split_options,
    load_registry,
    validate_spec,
)
from iclgd.core.registry_schema import FORMATS, SPLITS  # noqa: F401

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- reading


def _records_to_frame(records: Iterable[Record], spec: dict, opts: dict, rel: str, path: Path) -> pd.DataFrame:
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
            parse_parallel(spec, mirror_dir, opts, split), spec, opts, opts["text"], mirror_dir / opts["text"]
        )
    parser = PARSERS[opts["format"]]
    frames = []
    for rel in opts["paths"]:
        path = mirror_dir / rel
        text = decode(read_verified(spec, mirror_dir, rel, split), opts["encoding"], path)
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

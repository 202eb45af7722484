"""Two runs' small outputs compared value by value: what `make verify` and the thread comparison share.

A run's *small outputs* are the claims table, the statistics and metrics CSVs every study writes, the
construction study's headline and the paper's macros: kilobytes that carry every number the paper
prints. Values are compared as text when they are text and as numbers when they parse as numbers; the
run's own measurements (seconds, memory, the bench macros) are never compared.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

#: The small outputs, as globs relative to a run directory.
SMALL_OUTPUTS = ("results/stats/*.csv", "results/metrics/*.csv", "results/lsa/*.csv", "results/lsa/*.json",
                 "results/paper/macros/*.json", "paper/generated/macros.json")
#: Columns, keys and macros that hold the run's own measurements (times, memory): never compared.
MEASURED = re.compile(r"seconds|rss|_mb$|^Bench|^cuda_peak")
#: Tables keyed by claim family, row by row (the claims table and its sizing).
BY_FAMILY = ("results/stats/claims.csv", "results/stats/sizing.csv")


def rounded(file: str) -> bool:
    """The macros print numbers rounded for the reader; the CSVs and other JSON hold them at full
    precision (pandas writes the shortest text that reads back to the same float): there '60.0' is 60."""
    return file == "paper/generated/macros.json" or file.startswith("results/paper/macros/")
_LATEX_SCI = re.compile(r"^\$?(-?[\d.]+)\\times 10\^\{(-?\d+)\}\$?$")
_INFINITY = {"inf": math.inf, "-inf": -math.inf, r"$\infty$": math.inf, r"$-\infty$": -math.inf}


@dataclass(frozen=True)
class Tolerance:
    """How far a number may move: |obtained - expected| <= atol + rtol * scale + one unit in the last
    printed place (a value moved by less than the tolerance can still cross a rounding boundary). The
    scale is the largest magnitude in the value's CSV column, else the value's own: rounding in a
    difference of two numbers is relative to the numbers, not to the difference."""

    rtol: float = 0.0
    atol: float = 0.0

    def allowed(self, scale: float, unit: float) -> float:
        return self.atol + self.rtol * abs(scale) + unit


@dataclass(frozen=True)
class Value:
    """One compared value: where it is, both texts, and whether they agree."""

    file: str
    key: str
    expected: str
    obtained: str
    diff: float | None  # absolute difference when both are numbers
    allowed: float | None
    ok: bool
    scale: float | None = None  # the magnitude the relative tolerance applies to


def parse_number(text: str) -> tuple[float, float] | None:
    """(value, one unit in its last printed place) of a printed number, or None for text.
    Reads plain numbers, LaTeX's `$2.3\\times 10^{-6}$` and infinity as the macros print it."""
    text = text.strip()
    if text in _INFINITY:
        return _INFINITY[text], 0.0
    match = _LATEX_SCI.match(text)
    mantissa, exponent = (match.group(1), int(match.group(2))) if match else (text, 0)
    try:
        value = float(mantissa) * 10.0**exponent
    except ValueError:
        return None
    if math.isinf(value) or "nan" in mantissa.lower():
        return value, 0.0
    return value, _last_place(mantissa) * 10.0**exponent


def _last_place(text: str) -> float:
    """One unit in the last printed digit: 0.1 for '41.7', 0 for an integer (counts are exact)."""
    base, _, exp = text.lower().partition("e")
    if "." not in base:
        return 0.0
    return 10.0 ** (int(exp or 0) - len(base.split(".")[1]))


def compare_value(file: str, key: str, expected: str, obtained: str, tol: Tolerance,
                  scale: float | None = None) -> Value:
    """One value in both runs: text must match exactly, numbers within `tol` (plus one unit in the last
    printed place where `file` prints rounded numbers)."""
    exp, obt = parse_number(expected), parse_number(obtained)
    if exp is None or obt is None or expected.strip() == "" or obtained.strip() == "":
        return Value(file, key, expected, obtained, None, None, expected == obtained)
    (e, unit), (o, _) = exp, obt
    unit = unit if rounded(file) else 0.0
    if math.isnan(e) or math.isnan(o) or math.isinf(e) or math.isinf(o):
        same = (math.isnan(e) and math.isnan(o)) or e == o
        return Value(file, key, expected, obtained, None, None, same)
    scale = max(abs(e), scale or 0.0)
    diff, allowed = abs(o - e), tol.allowed(scale, unit)
    return Value(file, key, expected, obtained, diff, allowed, diff <= allowed, scale)


def small_outputs(run: Path) -> list[str]:
    """The small outputs a run holds, relative to it, sorted."""
    return sorted({p.relative_to(run).as_posix() for pattern in SMALL_OUTPUTS for p in run.glob(pattern)})


def read_cells(path: Path) -> dict[str, str]:
    """A small output as {key: text}: CSV cells keyed `row <i>: <column>`, JSON leaves by their key path.
    Measured fields are dropped."""
    if path.suffix == ".json":
        return {k: v for k, v in _flatten(json.loads(path.read_text())).items() if not MEASURED.search(k.split(".")[-1])}
    rows = list(csv.reader(io.StringIO(path.read_text())))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    cells = {f"row {i}: {col}": row[j] if j < len(row) else "" for i, row in enumerate(body)
             for j, col in enumerate(header) if not MEASURED.search(col)}
    cells["(rows)"] = str(len(body))
    return cells


def _flatten(value, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): "" if value is None else str(value)}


def column_scales(cells: dict[str, str]) -> dict[str, float]:
    """The largest finite magnitude in each CSV column (keys `row <i>: <column>`)."""
    scales: dict[str, float] = {}
    for key, text in cells.items():
        number = parse_number(text) if ": " in key else None
        if number is not None and math.isfinite(number[0]):
            column = key.split(": ", 1)[1]
            scales[column] = max(scales.get(column, 0.0), abs(number[0]))
    return scales


def compare_file(rel: str, expected: Path, obtained: Path, tol: Tolerance) -> list[Value]:
    """Every value of one small output in both runs; a key only one side has never agrees."""
    exp, obt = read_cells(expected), read_cells(obtained)
    scales, missing = column_scales(exp), "(absent)"
    return [compare_value(rel, key, exp.get(key, missing), obt.get(key, missing), tol,
                          scales.get(key.split(": ", 1)[-1]) if ": " in key else None)
            for key in list(exp) + [k for k in obt if k not in exp]]


def compare_runs(expected: Path, obtained: Path, tol: Tolerance,
                 rels: list[str] | None = None) -> tuple[list[Value], list[str]]:
    """All values of the small outputs `expected` holds (or `rels`), and the files missing in `obtained`."""
    rels = small_outputs(expected) if rels is None else rels
    values, missing = [], []
    for rel in rels:
        if not (obtained / rel).is_file():
            missing.append(rel)
            continue
        values += compare_file(rel, expected / rel, obtained / rel, tol)
    return values, missing

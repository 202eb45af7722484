"""How far a run's numbers move when only the arithmetic changes: the measurement behind `make verify`'s
tolerance.

`python -m iclgd.tools.tolerance --base runs/smoke --other runs/smoke-1thread ...` compares runs of one
config made with different torch thread counts or CPU kernels (README 'What reproduced tolerates'):
which small outputs are byte-identical, which values moved and by how much, and whether a verdict
changed. It writes the tolerance (`expected/tolerances.json`: `SAFETY` times the largest relative and
absolute movement seen, never below the floors) and a Markdown account of the measurement.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from iclgd.tools.compare_runs import ROUNDED, Tolerance, Value, compare_runs, small_outputs
from iclgd.tools.expected import EXPECTED

#: The tolerance is this many times the largest movement measured: another CPU reorders more sums
#: than a thread count does, and one measurement is not a maximum.
SAFETY = 10.0
#: Values at or below this size are compared absolutely: they are rounding residue (1e-16 and the like)
#: whose relative movement means nothing.
TINY = 1e-9
#: Floors, for when the measured runs agree bit for bit: float32's unit roundoff (the models compute in
#: float32) for relative movement, and TINY for absolute.
RTOL_FLOOR = 2.0**-24
ATOL_FLOOR = TINY


def movements(values: list[Value]) -> tuple[float, float]:
    """Largest relative movement among values above TINY, and largest absolute one among the rest; the
    rounded macros are left out (their one-unit flips are what the tolerance's last-place term allows)."""
    rel, small = 0.0, 0.0
    for v in values:
        if v.diff is None or v.diff == 0 or v.file in ROUNDED:
            continue
        exp = abs(float(v.expected)) if _plain(v.expected) else None
        if exp is not None and exp > TINY:
            rel = max(rel, v.diff / exp)
        else:
            small = max(small, v.diff)
    return rel, small


def _plain(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _identical(base: Path, other: Path, rels: list[str]) -> list[str]:
    return [r for r in rels if (other / r).is_file() and (other / r).read_bytes() == (base / r).read_bytes()]


def every_output(run: Path) -> list[str]:
    """Every file of a run's results/ and paper/generated/ (records, tables, macros), relative to it."""
    return sorted(p.relative_to(run).as_posix() for top in ("results", "paper/generated")
                  for p in (run / top).rglob("*") if p.is_file())


def describe(base: Path, other: Path, values: list[Value], missing: list[str]) -> dict:
    """One comparison: byte-identical files (small outputs, and every output with the records and the
    run's measurements in it), files whose values moved, text and verdict changes."""
    rels, everything = small_outputs(base), every_output(base)
    identical = _identical(base, other, rels)
    differing = sorted(set(everything) - set(_identical(base, other, everything)))
    moved = sorted({v.file for v in values if v.diff})
    text = [f"{v.file} {v.key}: {v.expected!r} -> {v.obtained!r}" for v in values if v.diff is None and not v.ok]
    rel, small = movements(values)
    return {"other": str(other), "files": len(rels), "byte_identical": len(identical), "moved_files": moved,
            "all_files": len(everything), "all_differing": differing,
            "values": len(values), "moved_values": sum(1 for v in values if v.diff), "max_rel": rel,
            "max_abs_tiny": small, "text_changes": text, "missing": missing,
            "verdicts_changed": [t for t in text if ": verdict" in t]}


def tolerance_from(comparisons: list[dict]) -> Tolerance:
    rel = max((c["max_rel"] for c in comparisons), default=0.0)
    small = max((c["max_abs_tiny"] for c in comparisons), default=0.0)
    return Tolerance(rtol=max(SAFETY * rel, RTOL_FLOOR), atol=max(SAFETY * small, ATOL_FLOOR))


def markdown(base: Path, comparisons: list[dict], tol: Tolerance) -> str:
    lines = [f"# What the arithmetic moves: {base} against other runs of its config", "",
             "| run | byte-identical small outputs | byte-identical outputs (all) | values moved | largest relative move | largest absolute move "
             "(values <= 1e-9) | text changes | verdicts changed |", "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        same_all = c["all_files"] - len(c["all_differing"])
        lines.append(f"| {c['other']} | {c['byte_identical']} of {c['files']} | {same_all} of {c['all_files']} | "
                     f"{c['moved_values']} of {c['values']} | "
                     f"{c['max_rel']:.3g} | {c['max_abs_tiny']:.3g} | {len(c['text_changes'])} | "
                     f"{len(c['verdicts_changed'])} |")
    lines += ["", f"Tolerance: rtol = {tol.rtol:.3g}, atol = {tol.atol:.3g} ({SAFETY:g} x the largest move, "
              f"floors {RTOL_FLOOR:.3g} and {ATOL_FLOOR:g}).", ""]
    for c in comparisons:
        if c["all_differing"] or c["text_changes"] or c["missing"]:
            lines += [f"## {c['other']}", "", *[f"- moved: {f}" for f in c["moved_files"]],
                      *[f"- not byte-identical: {f}" for f in c["all_differing"]],
                      *[f"- text: {t}" for t in c["text_changes"]], *[f"- missing: {m}" for m in c["missing"]], ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the reference run")
    parser.add_argument("--other", type=Path, action="append", required=True, help="a run of the same config")
    parser.add_argument("--out", type=Path, default=EXPECTED / "tolerances.json")
    parser.add_argument("--markdown", type=Path, default=EXPECTED / "arithmetic.md")
    args = parser.parse_args(argv)
    comparisons = []
    for other in args.other:
        values, missing = compare_runs(args.base, other, Tolerance())
        comparisons.append(describe(args.base, other, values, missing))
    tol = tolerance_from(comparisons)
    record = {"rtol": tol.rtol, "atol": tol.atol, "safety": SAFETY, "base": str(args.base), "comparisons": comparisons}
    args.out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    args.markdown.write_text(markdown(args.base, comparisons, tol))
    print(markdown(args.base, comparisons, tol))


if __name__ == "__main__":
    main()

"""How far a run's numbers move when only the arithmetic changes: the measurement behind `make verify`'s
tolerance.

`python -m iclgd.tools.tolerance --base runs/smoke --other runs/smoke-threads2 ...` compares runs of one
config made with other torch thread counts or CPU kernels (README 'What "reproduced" tolerates'): which
outputs are byte-identical, which values moved and by how much, which verdicts changed. A move of at
most NOISE times the value's scale is rounding; a larger one means a discrete step of the computation
(a converged epoch, a selected learning rate, an argmax) went the other way, and the output it is in is
*arithmetic-sensitive*. It writes `expected/tolerances.json` (the rounding tolerance, SAFETY times the
largest rounding move seen, and the sensitive outputs and claim families) and a Markdown account.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from iclgd.tools.claims_summary import family_studies
from iclgd.tools.compare_runs import BY_FAMILY, Tolerance, Value, compare_runs, rounded, small_outputs
from iclgd.tools.expected import EXPECTED

#: The tolerance is this many times the largest rounding move measured: another CPU reorders more sums
#: than a thread count does, and one measurement is not a maximum.
SAFETY = 10.0
#: A move above this fraction of the value's scale is not rounding: float32 (the models) resolves ~6e-8,
#: so 1e-4 is more than a thousand units in the last place of every operand.
NOISE = 1e-4
#: Values at or below this scale are rounding residue (1e-16 and the like): compared absolutely.
TINY = 1e-9
MERGED_MACROS = "paper/generated/macros.json"
#: Floors, for when the measured runs agree bit for bit: float32's unit roundoff, and TINY.
RTOL_FLOOR = 2.0**-24
ATOL_FLOOR = TINY


def is_rounding(v: Value) -> bool:
    """A number that moved by rounding only: within NOISE of its scale (a macro: within its last digit)."""
    if v.diff is None:
        return v.ok
    return v.diff <= (v.allowed if rounded(v.file) else NOISE * (v.scale or 0.0)) or v.diff <= TINY


def movements(values: list[Value]) -> tuple[float, float]:
    """Largest rounding move relative to its scale, and largest absolute move of a value at or below
    TINY; the macros are left out (their one-digit flips are what the last-place term allows)."""
    rel, small = 0.0, 0.0
    for v in values:
        if v.diff and not rounded(v.file) and is_rounding(v):
            if (v.scale or 0.0) > TINY:
                rel = max(rel, v.diff / v.scale)
            else:
                small = max(small, v.diff)
    return rel, small


def _families(base: Path, rel: str) -> list[str]:
    return [row.get("family", "") for row in csv.DictReader(io.StringIO((base / rel).read_text()))]


def unit(v: Value, rows: dict[str, list[str]]) -> str:
    """What a value belongs to for sensitivity: its claim family in the claims tables, else its file."""
    if v.file in rows and v.key.startswith("row "):
        return "family:" + rows[v.file][int(v.key.split(":")[0][4:])]
    return v.file


def sensitive(base: Path, values: list[Value]) -> tuple[list[str], list[str], list[Value]]:
    """(outputs, claim families) holding a value that moved by more than rounding or changed text, and
    the values outside them (whose moves set the rounding tolerance)."""
    rows = {rel: _families(base, rel) for rel in BY_FAMILY if (base / rel).is_file()}
    units = {unit(v, rows) for v in values if not is_rounding(v)}
    rest = [v for v in values if unit(v, rows) not in units]
    units.discard(MERGED_MACROS)  # a macro's sensitivity is its study's macro file's (results/paper/macros/)
    families = sorted(u.split(":", 1)[1] for u in units if u.startswith("family:"))
    return sorted(u for u in units if not u.startswith("family:")), families, rest


def _identical(base: Path, other: Path, rels: list[str]) -> list[str]:
    return [r for r in rels if (other / r).is_file() and (other / r).read_bytes() == (base / r).read_bytes()]


def every_output(run: Path) -> list[str]:
    """Every file of a run's results/ and paper/generated/ (records, tables, macros), relative to it."""
    return sorted(p.relative_to(run).as_posix() for top in ("results", "paper/generated")
                  for p in (run / top).rglob("*") if p.is_file())


def describe(base: Path, other: Path, values: list[Value], missing: list[str]) -> dict:
    """One comparison: byte-identical files (small outputs, and every output with the records and the
    run's measurements in it), what moved by rounding and what by more, text and verdict changes."""
    rels, everything = small_outputs(base), every_output(base)
    differing = sorted(set(everything) - set(_identical(base, other, everything)))
    text = [f"{v.file} {v.key}: {v.expected!r} -> {v.obtained!r}" for v in values if v.diff is None and not v.ok]
    files, families, rest = sensitive(base, values)
    rel, small = movements(rest)
    rows = _families(base, BY_FAMILY[0]) if (base / BY_FAMILY[0]).is_file() else []
    fragile = sorted({rows[int(v.key.split(":")[0][4:])] for v in values
                      if v.file == BY_FAMILY[0] and v.key.endswith(": verdict") and not v.ok})
    return {"other": str(other), "files": len(rels), "byte_identical": len(_identical(base, other, rels)),
            "all_files": len(everything), "all_differing": differing, "values": len(values),
            "moved_values": sum(1 for v in values if v.diff), "max_rel": rel, "max_abs_tiny": small,
            "beyond_rounding": sum(1 for v in values if not is_rounding(v)), "sensitive_files": files,
            "sensitive_families": families, "fragile_families": fragile, "text_changes": text, "missing": missing,
            "verdicts_changed": [t for t in text if ": verdict:" in t and t.startswith(BY_FAMILY[0])]}


def tolerance_from(comparisons: list[dict]) -> Tolerance:
    rel = max((c["max_rel"] for c in comparisons), default=0.0)
    small = max((c["max_abs_tiny"] for c in comparisons), default=0.0)
    return Tolerance(rtol=max(SAFETY * rel, RTOL_FLOOR), atol=max(SAFETY * small, ATOL_FLOOR))


def record(base: Path, comparisons: list[dict]) -> dict:
    """expected/tolerances.json: the rounding tolerance and the union of the sensitive outputs."""
    tol = tolerance_from(comparisons)
    families = sorted({f for c in comparisons for f in c["sensitive_families"]})
    studies = family_studies(base)
    return {"rtol": tol.rtol, "atol": tol.atol, "safety": SAFETY, "noise": NOISE, "base": str(base),
            "sensitive_files": sorted({f for c in comparisons for f in c["sensitive_files"]}),
            "sensitive_families": families, "sensitive_studies": sorted({studies[f] for f in families if f in studies}),
            "fragile_families": sorted({f for c in comparisons for f in c["fragile_families"]}),
            "comparisons": comparisons}


def markdown(rec: dict) -> str:
    lines = [f"# What the arithmetic moves: {rec['base']} against other runs of its config", "",
             "| run | byte-identical small outputs | byte-identical outputs (all) | values moved | beyond rounding | "
             "largest rounding move elsewhere (relative) | text changes | verdicts changed |", "|---|---|---|---|---|---|---|---|"]
    for c in rec["comparisons"]:
        same_all = c["all_files"] - len(c["all_differing"])
        lines.append(f"| {c['other']} | {c['byte_identical']} of {c['files']} | {same_all} of {c['all_files']} | "
                     f"{c['moved_values']} of {c['values']} | {c['beyond_rounding']} | {c['max_rel']:.3g} | "
                     f"{len(c['text_changes'])} | {len(c['verdicts_changed'])} |")
    lines += ["", f"Rounding tolerance: rtol = {rec['rtol']:.3g} of the value's scale, atol = {rec['atol']:.3g} "
              f"({SAFETY:g} x the largest rounding move, floors {RTOL_FLOOR:.3g} and {ATOL_FLOOR:g}); a move above "
              f"{NOISE:g} of the scale is not rounding.", "",
              "Arithmetic-sensitive outputs: " + (", ".join(rec["sensitive_files"]) or "none") + ".",
              "Arithmetic-sensitive claim families: " + (", ".join(rec["sensitive_families"]) or "none")
              + "; their studies (every claim of which verify treats alike): "
              + (", ".join(rec["sensitive_studies"]) or "none") + ".", ""]
    for c in rec["comparisons"]:
        lines += [f"## {c['other']}", "", *[f"- verdict changed: {t}" for t in c["verdicts_changed"]],
                  *[f"- text: {t}" for t in c["text_changes"] if t not in c["verdicts_changed"]],
                  *[f"- not byte-identical: {f}" for f in c["all_differing"]], *[f"- missing: {m}" for m in c["missing"]], ""]
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
    rec = record(args.base, comparisons)
    args.out.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    args.markdown.write_text(markdown(rec))
    print(markdown(rec))


if __name__ == "__main__":
    main()

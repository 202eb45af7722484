"""`make verify`: does a finished run agree with the shipped expected results?

Per claim it prints the expected and the obtained estimate, interval and verdict; per macro the expected
and obtained text; then every other small output's values in one count. A verdict that differs, a number
outside its tolerance (expected/tolerances.json, measured by `iclgd.tools.tolerance`), a text that
differs or an output that is missing fails the check (exit 1), naming the claim, macro or file. The
same report lands as Markdown in `<run>/results/verify.md`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from iclgd.core.provenance import git_commit
from iclgd.tools.compare_runs import BY_FAMILY, Tolerance, Value, compare_runs
from iclgd.tools.expected import EXPECTED, MANIFEST, REPO, code_sha256, configfiles_sha256, run_dir, run_threads

CLAIMS = "results/stats/claims.csv"
MACROS = "paper/generated/macros.json"
TOLERANCES = EXPECTED / "tolerances.json"


@dataclass
class Report:
    """What `verify` found, as lines for the terminal and the Markdown summary."""

    header: list[str]
    claims: list[list[str]]
    macros: list[list[str]]
    other: list[str]
    failures: list[str]
    notes: list[str] = field(default_factory=list)  # moves allowed on other arithmetic (README)

    @property
    def passed(self) -> bool:
        return not self.failures


def load_tolerance(path: Path = TOLERANCES) -> Tolerance:
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run `python -m iclgd.tools.tolerance` on two measured runs (README)")
    record = json.loads(path.read_text())
    try:
        return Tolerance(rtol=float(record["rtol"]), atol=float(record["atol"]))
    except (KeyError, ValueError) as err:
        raise SystemExit(f"{path}: needs numeric 'rtol' and 'atol' ({err})") from None


@dataclass(frozen=True)
class Sensitive:
    """The outputs and claim families the tolerance measurement found arithmetic-sensitive: on other
    arithmetic (CPU, torch, threads) their numbers may move; verdicts must agree all the same."""

    files: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()
    macros: frozenset[str] = frozenset()
    fragile: frozenset[str] = frozenset()  # families whose verdict changed when only the arithmetic did
    fragile_verdicts_move: bool = False  # on other arithmetic: a fragile family's verdict may change too

    def allows(self, v: Value, family: str | None = None) -> bool:
        if v.key.endswith("verdict"):
            return self.fragile_verdicts_move and family in self.fragile
        return family in self.families if family is not None else v.file in self.files or v.key in self.macros


def load_sensitive(expected: Path, path: Path = TOLERANCES) -> Sensitive:
    """The sensitive outputs of tolerances.json; a macro is sensitive when a sensitive per-study macro
    file of the expected results holds it, a claim family when it or its study was measured sensitive
    (the expected results' manifest maps families to studies: a config may test families the
    measured one did not)."""
    record = json.loads(path.read_text()) if path.is_file() else {}
    files = frozenset(record.get("sensitive_files", []))
    macros = {k for f in files if f.startswith("results/paper/macros/") and (expected / f).is_file()
              for k in json.loads((expected / f).read_text())}
    studies = set(record.get("sensitive_studies", []))
    claim_studies = json.loads((expected / MANIFEST).read_text()).get("claim_studies", {})
    families = set(record.get("sensitive_families", [])) | {f for f, st in claim_studies.items() if st in studies}
    return Sensitive(files, frozenset(families), frozenset(macros), frozenset(record.get("fragile_families", [])))


def arithmetic(expected: dict, run: Path, repo: Path) -> dict[str, str]:
    """What decides the rounding: CPU model, torch, threads; the run's from its provenance and config."""
    prov_path = run / "results/paper/provenance.json"
    if not prov_path.is_file():
        return {}
    prov = json.loads(prov_path.read_text())
    env = prov["environment"]
    return {"cpu": env["cpu"], "torch": env["package torch"], "threads": run_threads(run, prov["configfiles"], repo)}


def provenance_lines(expected: dict, run: Path, repo: Path) -> list[str]:
    """Where the expected results came from, and whether this run's code and config are the same."""
    prov_path = run / "results/paper/provenance.json"
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
    m = expected["machine"]
    code = code_sha256(repo)
    lines = [f"expected: {expected['name']} run of commit {expected['commit']}, finished {expected['run_finished']}, "
             f"{m['cpu']} ({m['cores']} cores), torch {m['torch']}, {m['threads']} threads",
             f"obtained: {run} (commit {prov.get('commit', 'unknown')}, checkout {git_commit(repo)})"]
    if code == expected["code_sha256"]:
        lines.append(f"code: the same as the expected results' (sha256 {code[:12]})")
    else:
        lines.append(f"code: DIFFERS from the expected results' ({code[:12]} here, {expected['code_sha256'][:12]} "
                     "there): a difference below may be a change of the code, not of the machine")
    lines.append(config_line(expected, prov, repo))
    return lines


def config_line(expected: dict, prov: dict, repo: Path) -> str:
    """Same config? The resolved config's hash holds the checkout's absolute data path, so a run in another
    directory differs there alone: the config files' bytes decide then."""
    run_cfg = prov.get("config_sha256", "unknown")
    if run_cfg == expected["config_sha256"]:
        return f"config: the same as the expected results' (resolved, sha256 {run_cfg[:12]})"
    files = configfiles_sha256(prov.get("configfiles", []), repo)
    if files == expected.get("configfiles_sha256"):
        return (f"config: the same config files as the expected results' ({', '.join(prov['configfiles'])}, sha256 "
                f"{files[:12]}); the resolved config's hash differs ({run_cfg[:12]} here, "
                f"{expected['config_sha256'][:12]} there), as it does in another directory (absolute data path) "
                "or with --config overrides")
    return (f"config: DIFFERS from the expected results' (files {files[:12]} here, "
            f"{str(expected.get('configfiles_sha256'))[:12]} there; resolved {run_cfg[:12]} vs "
            f"{expected['config_sha256'][:12]})")


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text()))) if path.is_file() else []


def _claim_label(row: dict[str, str], seen: dict[str, int]) -> str:
    base = row["family"] + (f" [{row['model']}/{row['dataset']}]" if row.get("model") else "")
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base} #{seen[base]}"


def _estimate(row: dict[str, str] | None) -> str:
    if row is None:
        return "(absent)"
    lo, hi = _short(row["effect_lo"]), _short(row["effect_hi"])
    return f"{_short(row['effect'])} [{lo}, {hi}] {row['verdict']}"


def _short(text: str) -> str:
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text or "--"


def claim_lines(values: list[Value], expected: Path, run: Path,
                allow: Sensitive) -> tuple[list[list[str]], list[str], list[str]]:
    """One row per claim: label, expected and obtained estimate [CI] verdict, agreement; failures, notes."""
    exp_rows, obt_rows = _rows(expected / CLAIMS), _rows(run / CLAIMS)
    mine = [v for v in values if v.file == CLAIMS]
    rows, failures, notes, seen = [], [], [], {}
    for i, row in enumerate(exp_rows):
        label = _claim_label(row, seen)
        cells = [v for v in mine if v.key.startswith(f"row {i}: ") and not v.ok]
        moved = [v.key.split(": ", 1)[1] for v in cells if allow.allows(v, row["family"])]
        bad = [v.key.split(": ", 1)[1] for v in cells if not allow.allows(v, row["family"])]
        obtained = obt_rows[i] if i < len(obt_rows) else None
        ok = obtained is not None and not bad
        rows.append([label, _estimate(row), _estimate(obtained), ("moved" if moved else "yes") if ok else "NO"])
        if not ok:
            what = "verdict differs" if "verdict" in bad else f"differs in {', '.join(bad) or 'presence'}"
            if "verdict" in bad and row["family"] in allow.fragile:
                what += " (fragile: its verdict also changed when only the arithmetic did; expected/arithmetic.md)"
            failures.append(f"claim {label}: {what}")
        if moved:
            fragile = " -- a fragile verdict: it also changed under 2 threads and AVX2 on the reference CPU, " \
                      "expected/arithmetic.md" if "verdict" in moved else ""
            notes.append(f"claim {label}: moved in {', '.join(moved)} (arithmetic-sensitive family{fragile})")
    if len(obt_rows) > len(exp_rows):
        failures.append(f"claims: {len(obt_rows) - len(exp_rows)} claim rows the expected results do not have")
    return rows, failures, notes


def macro_lines(values: list[Value], allow: Sensitive) -> tuple[list[list[str]], list[str], list[str]]:
    """One row per macro: name, expected, obtained, |difference| and what is allowed, agreement; failures,
    notes."""
    rows, failures, notes = [], [], []
    for v in (v for v in values if v.file == MACROS):
        diff = "" if v.diff is None else f"{v.diff:.3g} <= {v.allowed:.3g}"
        moved = not v.ok and allow.allows(v)
        rows.append([v.key, v.expected, v.obtained, diff, "yes" if v.ok else "moved" if moved else "NO"])
        if moved:
            notes.append(f"macro \\{v.key}: {v.expected} -> {v.obtained} (arithmetic-sensitive)")
        elif not v.ok:
            failures.append(f"macro \\{v.key}: expected {v.expected}, obtained {v.obtained}"
                            + (f" (|difference| {v.diff:.3g} > {v.allowed:.3g} allowed)" if v.diff is not None else ""))
    return rows, failures, notes


def _family(v: Value, expected: Path) -> str | None:
    """The claim family of a row of the sizing table (keyed by family like the claims table)."""
    if v.file not in BY_FAMILY or not v.key.startswith("row "):
        return None
    rows = _rows(expected / v.file)
    return rows[int(v.key.split(":")[0][4:])].get("family", "")


def other_lines(values: list[Value], missing: list[str], allow: Sensitive,
                expected: Path) -> tuple[list[str], list[str], list[str]]:
    """The other small outputs: one count line, each value that disagrees, and the allowed moves."""
    rest = [v for v in values if v.file not in (CLAIMS, MACROS)]
    bad = [v for v in rest if not v.ok]
    moved = [v for v in bad if allow.allows(v, _family(v, expected))]
    files = len({v.file for v in rest})
    lines = [f"{len(rest) - len(bad)} of {len(rest)} values in {files} other outputs agree"
             + (f"; {len(moved)} moved in arithmetic-sensitive outputs" if moved else "")]
    failures = [f"{v.file} {v.key}: expected {v.expected!r}, obtained {v.obtained!r}" for v in bad if v not in moved]
    failures += [f"missing output: {rel}" for rel in missing]
    notes = [f"{f}: {sum(1 for v in moved if v.file == f)} values moved (arithmetic-sensitive)"
             for f in sorted({v.file for v in moved})]
    return lines, failures, notes


def verify(run: Path, expected: Path, tol: Tolerance, repo: Path = REPO, sensitive: Sensitive | None = None) -> Report:
    """Compare `run` with `expected`. On the expected results' own arithmetic (CPU model, torch, threads)
    every number must agree within `tol`; on other arithmetic the `sensitive` outputs may move."""
    record = json.loads((expected / MANIFEST).read_text())
    values, missing = compare_runs(expected, run, tol, rels=sorted(record["files"]))
    header = provenance_lines(record, run, repo)
    header.append(f"tolerance: |obtained - expected| <= {tol.atol:g} + {tol.rtol:g} x scale "
                  "(+ one unit in the last printed digit of a macro)")
    mine = {k: str(record["machine"][k]) for k in ("cpu", "torch", "threads")}
    theirs = {k: str(v) for k, v in arithmetic(record, run, repo).items()}
    same = sensitive is None or not theirs or mine == theirs  # unknown arithmetic: held to the strict check
    allow = (Sensitive(fragile=sensitive.fragile if sensitive else frozenset()) if same
             else replace(sensitive, fragile_verdicts_move=True))
    fragile = ", ".join(sorted(allow.fragile)) or "none"
    header.append("arithmetic: the same CPU model, torch and threads as the expected results: every number must agree"
                  if mine == theirs else f"arithmetic: DIFFERS ({theirs or 'unknown'} here, {mine} there): the outputs "
                  "measured as arithmetic-sensitive may move (listed, not failed); every verdict must agree but those "
                  f"of the families measured fragile ({fragile}: listed, not failed)")
    claims, claim_fail, claim_notes = claim_lines(values, expected, run, allow)
    macros, macro_fail, macro_notes = macro_lines(values, allow)
    other, other_fail, other_notes = other_lines(values, missing, allow, expected)
    if CLAIMS in missing:
        claim_fail.append(f"missing output: {CLAIMS}")
    return Report(header, claims, macros, other, claim_fail + macro_fail + other_fail,
                  claim_notes + macro_notes + other_notes)


def _table(rows: list[list[str]], head: list[str]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(
        c.replace("|", "\\|") for c in r) + " |" for r in rows]


def markdown(report: Report, run: Path) -> str:
    verdict = "PASSED" if report.passed else f"FAILED ({len(report.failures)} disagreements)"
    parts = [f"# make verify: {run}: {verdict}", "", *[f"- {line}" for line in report.header], "",
             "## Claims", "", *_table(report.claims, ["claim", "expected", "obtained", "agree"]), "",
             "## Macros", "", *_table(report.macros, ["macro", "expected", "obtained", "|diff| <= allowed", "agree"]),
             "", "## Other outputs", "", *[f"- {line}" for line in report.other]]
    if report.notes:
        parts += ["", "## Moved on other arithmetic (allowed)", "", *[f"- {line}" for line in report.notes]]
    if report.failures:
        parts += ["", "## Disagreements", "", *[f"- {line}" for line in report.failures]]
    return "\n".join(parts) + "\n"


def print_report(report: Report, summary: Path) -> None:
    print(*report.header, sep="\n")
    width = max((len(r[0]) for r in report.claims), default=10)
    print(f"\nclaims ({len(report.claims)}): expected | obtained | agree")
    for label, exp, obt, ok in report.claims:
        print(f"  {label:<{width}}  {exp}  |  {obt}  |  {ok}")
    width = max((len(r[0]) for r in report.macros), default=10)
    print(f"\nmacros ({len(report.macros)}): expected | obtained | |diff| <= allowed | agree")
    for name, exp, obt, diff, ok in report.macros:
        print(f"  {name:<{width}}  {exp[:40]}  |  {obt[:40]}  |  {diff}  |  {ok}")
    print("", *report.other, sep="\n")
    for line in report.notes:
        print(f"MOVED (allowed): {line}")
    for line in report.failures:
        print(f"DISAGREES: {line}")
    print(f"\nverify {'PASSED' if report.passed else 'FAILED'}: {len(report.failures)} disagreements; "
          f"summary in {summary}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="expected/<name>, run in the root (default) or runs/<name>")
    parser.add_argument("--run", type=Path, help="the run directory (default: from --name)")
    parser.add_argument("--expected", type=Path, help="the expected results (default: expected/<name>)")
    args = parser.parse_args(argv)
    run, expected = args.run or run_dir(args.name), args.expected or EXPECTED / args.name
    if not (expected / MANIFEST).is_file():
        shipped = ", ".join(sorted(m.parent.name for m in EXPECTED.glob(f"*/{MANIFEST}")))
        raise SystemExit(f"{expected}: no expected results here (no {MANIFEST}); shipped: {shipped}")
    if not (run / "results").is_dir():
        raise SystemExit(f"{run}: no run here (no results/); run `make {'reproduce' if args.name == 'default' else args.name}` first")
    report = verify(run, expected, load_tolerance(), sensitive=load_sensitive(expected))
    summary = run / "results" / "verify.md"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(markdown(report, run))
    print_report(report, summary)
    sys.exit(0 if report.passed else 1)


if __name__ == "__main__":
    main()

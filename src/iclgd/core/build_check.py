"""The paper as its reader sees it: checks of a finished LaTeX build that a passing `latexmk` does not make.

A PDF can build while a caption runs off its page, a table is wider than the text or a figure lands three
pages after the sentence that cites it. This module reads the build's `main.log` (warnings), `main.aux`
(the page of every float label, and of every `\\ref` through the hook in `paper/iclgd.sty`) and the PDF
itself (`pdfinfo`, `pdftoppm`), and returns every violation as a sentence naming the page or line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: Overfull boxes up to this many points are tolerated (TeX reports sub-point overshoots of justified
#: text that no reader can see).
OVERFULL_TOLERANCE_PT = 1.0
#: A float may appear at most this many pages after its first reference.
MAX_FLOAT_DISTANCE = 1

_OVERFULL = re.compile(r"^Overfull \\([hv])box \((\d+(?:\.\d+)?)pt too (?:wide|high)\) (.*)$", re.MULTILINE)
_FLOAT_TOO_LARGE = re.compile(r"Float too large for page by (\d+(?:\.\d+)?)pt on input line (\d+)")
_UNDEFINED = re.compile(r"(Reference|Citation) [`']([^']+)' on page (\d+) undefined")
_NEWLABEL = re.compile(r"^\\newlabel\{((?:fig|tab):[^}]+)\}\{\{[^{}]*\}\{(\d+)\}", re.MULTILINE)
_REFPAGE = re.compile(r"^\\iclgdrefpage\{([^}]+)\}\{(\d+)\}", re.MULTILINE)


@dataclass
class BuildReport:
    """What the check found: the page count, every float's page and first-reference page, and problems."""

    pages: int = 0
    floats: dict[str, dict[str, int | None]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_OPENED = re.compile(r"\((\./[^\s()]+\.tex)")


def _source(log: str, pos: int) -> str:
    """The input file a log message at `pos` comes from: the last `(./file.tex` still open there (TeX logs
    an opened file as "(name" and its end as ")"), else the main file."""
    for opened in reversed(list(_OPENED.finditer(log, 0, pos))):
        between = log[opened.end():pos]
        if between.count(")") <= between.count("("):
            return opened.group(1)[2:]
    return "main.tex"


def log_problems(log: str, tolerance_pt: float = OVERFULL_TOLERANCE_PT) -> list[str]:
    """Float-too-large, overfull boxes beyond the tolerance (with the input file they come from) and undefined
    references/citations in a LaTeX log (written with `max_print_line` large enough that no message is wrapped)."""
    problems = [f"Float too large for page by {pt} pt (input line {line})" for pt, line in _FLOAT_TOO_LARGE.findall(log)]
    for found in _OVERFULL.finditer(log):
        kind, pt, where = found.groups()
        if float(pt) > tolerance_pt:
            problems.append(f"Overfull \\{kind}box by {pt} pt {where.strip()} ({_source(log, found.start())})")
    problems += [f"{kind} '{key}' undefined (page {page})" for kind, key, page in _UNDEFINED.findall(log)]
    if "There were undefined references" in log and not _UNDEFINED.search(log):
        problems.append("undefined references (see the log)")
    return problems


def float_pages(aux: str) -> dict[str, dict[str, int | None]]:
    """Per figure/table label: the page it is on and the page of its first reference (None if never cited).

    Labels come from `\\newlabel` (the float's page); references from the `\\iclgdrefpage` lines the
    `\\ref` hook of `paper/iclgd.sty` writes at shipout, so their page is the page the reader sees."""
    refs: dict[str, int] = {}
    for key, page in _REFPAGE.findall(aux):
        refs[key] = min(refs.get(key, int(page)), int(page))
    return {key: {"page": int(page), "first_ref": refs.get(key)} for key, page in _NEWLABEL.findall(aux)}


def placement_problems(floats: dict[str, dict[str, int | None]], max_distance: int = MAX_FLOAT_DISTANCE) -> list[str]:
    """A float never cited, or a figure placed more than `max_distance` pages after its first citation (a table
    may be cited from the body and printed in an appendix, where the detail belongs)."""
    problems = []
    for key, where in sorted(floats.items()):
        if where["first_ref"] is not None and not key.startswith("fig:"):
            continue
        if where["first_ref"] is None:
            problems.append(f"{key} (page {where['page']}) is never referenced")
        elif where["page"] - where["first_ref"] > max_distance:
            problems.append(f"{key} is on page {where['page']}, {where['page'] - where['first_ref']} pages after its "
                            f"first reference (page {where['first_ref']})")
    return problems


def render_problems(pdf: Path) -> tuple[int, list[str]]:
    """Render every page with `pdftoppm` (at a low resolution: this tests that pages render, not how they look);
    returns the page count from `pdfinfo` and the problems."""
    for tool in ("pdfinfo", "pdftoppm", "pdftotext"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: install poppler-utils (`make tex`)")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True)
    found = re.search(r"^Pages:\s+(\d+)", info.stdout, re.MULTILINE)
    if info.returncode != 0 or not found:
        return 0, [f"pdfinfo cannot read {pdf}: {info.stderr.strip()}"]
    pages = int(found.group(1))
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(["pdftoppm", "-r", "20", "-png", str(pdf), f"{tmp}/page"], capture_output=True, text=True)
        rendered = sorted(Path(tmp).glob("page*.png"))
        problems = [f"pdftoppm: {line}" for line in run.stderr.splitlines() if line.strip()]
        if run.returncode != 0:
            problems.append(f"pdftoppm failed on {pdf} (exit {run.returncode})")
        problems += [f"page {i + 1} rendered empty" for i, png in enumerate(rendered) if png.stat().st_size == 0]
        if len(rendered) != pages:
            problems.append(f"{len(rendered)} of {pages} pages rendered")
    return pages, problems


def text_problems(pdf: Path) -> list[str]:
    """Characters the reader sees that the source did not mean: '<' and '>' typed in text mode print as '¡'
    and '¿' in LaTeX's default font encoding (the source must write $<$ or \\textless)."""
    run = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True)
    if run.returncode != 0:
        return [f"pdftotext cannot read {pdf}: {run.stderr.strip()}"]
    return [f"page {i + 1}: '{ch}' printed (a '<' or '>' in text mode?)"
            for i, page in enumerate(run.stdout.split("\f")) for ch in "¡¿" if ch in page]


def check_build(pdf: Path, log: Path, aux: Path, tolerance_pt: float = OVERFULL_TOLERANCE_PT,
                max_distance: int = MAX_FLOAT_DISTANCE) -> BuildReport:
    """Every check on one finished build."""
    for path in (pdf, log, aux):
        if not Path(path).is_file():
            raise FileNotFoundError(f"build check: {path} does not exist (did latexmk run?)")
    report = BuildReport()
    report.pages, render = render_problems(Path(pdf))
    report.floats = float_pages(Path(aux).read_text(errors="replace"))
    report.problems = [*log_problems(Path(log).read_text(errors="replace"), tolerance_pt), *render,
                       *text_problems(Path(pdf)), *placement_problems(report.floats, max_distance)]
    return report

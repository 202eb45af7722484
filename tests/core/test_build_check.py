"""The paper's build check: hand-written logs and aux files, and real LaTeX builds with paper/iclgd.sty
(one clean, one with each defect the check exists to catch)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from iclgd.core import build_check, latex

REPO = Path(__file__).resolve().parents[2]

LOG = r"""
LaTeX Warning: Float too large for page by 42.0pt on input line 210.
Overfull \hbox (0.4pt too wide) in paragraph at lines 10--12
(./generated/tab_wide.tex (./generated/inner.tex)
Overfull \hbox (12.5pt too wide) in alignment at lines 300--340
) [3]
Overfull \vbox (3.0pt too high) has occurred while \output is active
LaTeX Warning: Reference `tab:gone' on page 3 undefined on input line 77.
Package natbib Warning: Citation `nobody2024' on page 4 undefined on input line 90.
"""


def test_log_problems_names_each_defect_and_tolerates_sub_point_overfull():
    problems = build_check.log_problems(LOG)
    assert problems == [
        "Float too large for page by 42.0 pt (input line 210)",
        "Overfull \\hbox by 12.5 pt in alignment at lines 300--340 (generated/tab_wide.tex)",
        "Overfull \\vbox by 3.0 pt has occurred while \\output is active (main.tex)",
        "Reference 'tab:gone' undefined (page 3)",
        "Citation 'nobody2024' undefined (page 4)",
    ]
    assert build_check.log_problems("Overfull \\hbox (0.9pt too wide) in paragraph at lines 1--2") == []


AUX = r"""
\newlabel{fig:a}{{1}{2}{Caption A}{figure.caption.1}{}}
\newlabel{fig:b}{{2}{5}{Caption B}{figure.caption.2}{}}
\newlabel{tab:c}{{1}{7}{Caption C}{table.caption.3}{}}
\newlabel{fig:d}{{3}{6}{Caption D}{figure.caption.4}{}}
\newlabel{sec:x}{{2}{1}{Intro}{section.2}{}}
\iclgdrefpage{fig:a}{3}
\iclgdrefpage{fig:a}{1}
\iclgdrefpage{fig:b}{3}
\iclgdrefpage{tab:c}{2}
"""


def test_float_pages_reads_each_float_and_its_first_reference():
    floats = build_check.float_pages(AUX)
    assert floats == {"fig:a": {"page": 2, "first_ref": 1}, "fig:b": {"page": 5, "first_ref": 3},
                      "tab:c": {"page": 7, "first_ref": 2}, "fig:d": {"page": 6, "first_ref": None}}


def test_placement_problems_flag_far_figures_and_uncited_floats_only():
    """tab:c, five pages after its first reference, passes: the body may cite an appendix table."""
    problems = build_check.placement_problems(build_check.float_pages(AUX))
    assert problems == ["fig:b is on page 5, 2 pages after its first reference (page 3)",
                        "fig:d (page 6) is never referenced"]


# ---------------------------------------------------------------------------------------------------------
# Real builds

needs_tex = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftoppm") is None,
                               reason="needs latexmk and poppler-utils (make tex)")

PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[margin=1in]{geometry}
\usepackage[hidelinks]{hyperref}
\usepackage{iclgd}
\begin{document}
"""
FILLER = "Words that fill a page of text for the build check. " * 40 + "\n\n"


def _build(tmp_path: Path, body: str) -> build_check.BuildReport:
    tex = tmp_path / "main.tex"
    tex.write_text(PREAMBLE + body + "\n\\end{document}\n")
    pdf = tmp_path / "out" / "main.pdf"
    pdf.parent.mkdir()
    latex.build(tex, [REPO / "paper" / "iclgd.sty"], [], [], pdf, tmp_path / "latexmk.log")
    build = pdf.parent / "build"
    return build_check.check_build(pdf, build / "main.log", build / "main.aux")


@needs_tex
def test_a_clean_build_passes_and_the_ref_hook_records_pages(tmp_path):
    body = ("See Figure~\\ref{fig:one}.\n\\begin{figure}[tbp]\\centering\\rule{2in}{1in}\\caption{One.}"
            "\\label{fig:one}\\end{figure}\n" + FILLER * 3 + "Again Figure~\\ref{fig:one}.\n")
    report = _build(tmp_path, body)
    assert report.ok, report.problems
    assert report.pages >= 2
    assert report.floats == {"fig:one": {"page": 1, "first_ref": 1}}


@needs_tex
def test_a_defective_build_fails_with_every_defect(tmp_path):
    """(An undefined reference already fails latexmk itself, so the log test above covers it.)"""
    body = (
        "Cited first here: Figure~\\ref{fig:late}.\n" + FILLER * 2
        # a float taller than the page, forced to the end by [p] placement behind a clear page
        + "\\begin{figure}[p]\\centering\\rule{1in}{10in}\\caption{Too tall.}\\label{fig:tall}\\end{figure}\n"
        + "\\clearpage\n" + FILLER * 6
        + "\\begin{figure}[tbp]\\centering\\rule{1in}{1in}\\caption{Late.}\\label{fig:late}\\end{figure}\n"
        + "\\noindent\\rule{8in}{1pt}\n"  # wider than the text
        + "\n\nA threshold < 1e-3 typed in text mode.\n"
    )
    problems = _build(tmp_path, body).problems
    assert any(p.startswith("Float too large") for p in problems), problems
    assert any(p.startswith("Overfull \\hbox") for p in problems), problems
    assert any(p.startswith("fig:late is on page") for p in problems), problems
    assert any(p.endswith("'¡' printed (a '<' or '>' in text mode?)") for p in problems), problems
    assert any(p.startswith("fig:tall (page") and p.endswith("is never referenced") for p in problems), problems


@needs_tex
def test_runsfigure_places_every_page_of_a_multi_page_figure(tmp_path):
    """A figure with more runs than a page holds (figures.save writes one PDF page per group of runs) is
    placed as a figure and its continuation, with one number and no problem."""
    import matplotlib.pyplot as plt

    from iclgd.core import figures

    pages = []
    for i in range(2):
        fig, axes = figures.grid(1, 1, 2.0)
        axes[0, 0].plot([0, 1], [i, 1 - i], label=f"page {i + 1}")
        pages.append(fig)
    (tmp_path / "figures").mkdir()
    figures.save(pages, tmp_path / "figures" / "runs.pdf")
    assert not plt.get_fignums()
    tex = tmp_path / "main.tex"
    tex.write_text(PREAMBLE + "Figure~\\ref{fig:runs} has two pages.\n"
                   "\\runsfigure{figures/runs.pdf}{Runs.}{fig:runs}\n" + FILLER + "\\end{document}\n")
    pdf = tmp_path / "out" / "main.pdf"
    pdf.parent.mkdir()
    latex.build(tex, [REPO / "paper" / "iclgd.sty"], [], [tmp_path / "figures" / "runs.pdf"], pdf, tmp_path / "l.log")
    build = pdf.parent / "build"
    report = build_check.check_build(pdf, build / "main.log", build / "main.aux")
    assert report.ok, report.problems
    log = (build / "main.log").read_text()
    assert all(re.search(rf"figures/runs\.pdf\s*, page{i} used", log) for i in (1, 2))
    assert list(report.floats) == ["fig:runs"]
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Figure 1: Runs." in text and "Figure 1: (continued)." in text  # one number, two pages

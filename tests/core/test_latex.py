"""Building the paper (iclgd.core.latex) with a stand-in latexmk: sources copied into a scratch build directory
(never the source tree), a fixed date in the environment, the PDF moved into place, a failure naming the log,
and a missing latexmk named."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from iclgd.core import latex

#: A latexmk that lists what it was given and writes the PDF (or fails when main.tex asks it to).
FAKE_LATEXMK = """#!/bin/sh
tex="$(eval echo \\${$#})"
if grep -q FAIL "$tex"; then echo "! LaTeX Error" ; exit 12; fi
{ echo "%PDF-fake date=$SOURCE_DATE_EPOCH print=$max_print_line"; ls -R . ; } > "${tex%.tex}.pdf"
"""


@pytest.fixture
def sources(tmp_path, monkeypatch) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "latexmk").write_text(FAKE_LATEXMK)
    (bin_dir / "latexmk").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    src = tmp_path / "src"
    src.mkdir()
    files = {"tex": src / "main.tex", "bib": src / "refs.bib", "macros": src / "macros.tex", "fig": src / "acc.pdf"}
    for name, path in files.items():
        path.write_text(name)
    return files


def test_build_copies_sources_into_a_scratch_dir_and_moves_the_pdf_into_place(tmp_path, sources):
    pdf, log = tmp_path / "out" / "paper.pdf", tmp_path / "out" / "paper.log"
    pdf.parent.mkdir()
    latex.build(sources["tex"], [sources["bib"]], [sources["macros"]], [sources["fig"]], pdf, log)
    text = pdf.read_text()
    assert text.startswith("%PDF-fake date=0 print=10000")  # reproducible date, unwrapped log lines
    assert "refs.bib" in text and "./generated:\nmacros.tex" in text and "./figures:\nacc.pdf" in text
    assert sorted(p.name for p in sources["tex"].parent.iterdir()) == ["acc.pdf", "macros.tex", "main.tex", "refs.bib"]
    assert not pdf.with_suffix(".pdf.tmp").exists()


def test_a_failed_build_names_the_log_and_keeps_the_old_pdf(tmp_path, sources):
    pdf, log = tmp_path / "paper.pdf", tmp_path / "paper.log"
    pdf.write_text("old")
    sources["tex"].write_text("FAIL")
    with pytest.raises(RuntimeError, match=r"latexmk failed \(exit 12\); see .*paper\.log"):
        latex.build(sources["tex"], [], [], [], pdf, log)
    assert pdf.read_text() == "old" and "! LaTeX Error" in log.read_text()


def test_a_missing_latexmk_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(latex.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="latexmk not found"):
        latex.build(tmp_path / "main.tex", [], [], [], tmp_path / "paper.pdf", tmp_path / "paper.log")

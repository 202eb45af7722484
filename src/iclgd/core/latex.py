"""Build the paper with latexmk in a scratch directory, so the source tree is never written."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def build(tex: Path, extra: list[Path], generated: list[Path], figures: list[Path], pdf: Path, log: Path) -> None:
    """Copy sources to `<pdf dir>/build`, run latexmk, move the PDF into place atomically."""
    if shutil.which("latexmk") is None:
        raise RuntimeError("latexmk not found: install TeX Live (`make tex`, Debian: latexmk texlive-latex-extra)")
    build_dir = pdf.parent / "build"
    shutil.rmtree(build_dir, ignore_errors=True)
    (build_dir / "generated").mkdir(parents=True)
    (build_dir / "figures").mkdir()
    for src in [tex, *extra]:
        shutil.copy(src, build_dir / src.name)
    for src in generated:
        shutil.copy(src, build_dir / "generated" / src.name)
    for src in figures:
        shutil.copy(src, build_dir / "figures" / src.name)
    # A fixed date makes pdflatex's output independent of when it ran; unwrapped log lines let the build
    # check (core.build_check) read every warning whole.
    env = os.environ | {"SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1", "max_print_line": "10000"}
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", tex.name]
    with open(log, "a", encoding="utf-8") as out:
        result = subprocess.run(cmd, cwd=build_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"latexmk failed (exit {result.returncode}); see {log} and {build_dir / tex.stem}.log")
    tmp = pdf.with_suffix(".pdf.tmp")
    shutil.copy(build_dir / (tex.stem + ".pdf"), tmp)
    os.replace(tmp, pdf)

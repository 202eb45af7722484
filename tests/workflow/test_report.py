"""The Snakemake HTML report (`make report`): every figure with its category and caption, rendered
in headless Chromium by workflow/scripts/check_report.py (`make report-check`).

The slow tests build the report from the end-to-end run on fixture data (the `e2e` fixture).
Chromium is required, not optional: `make test` installs it (the `chromium` target).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest
from pipeline_support import REPO, snakemake


def load_checker(root: Path):
    spec = importlib.util.spec_from_file_location("check_report", root / "workflow" / "scripts" / "check_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = load_checker(REPO)


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not on PATH: install it with `make chromium` "
                    "(the install step `make test` and `make report-check` run; Debian package chromium)")
    return path


def test_checked_figures_are_the_ones_marked_for_the_report():
    rules = "".join(path.read_text() for path in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    marked = re.findall(r'report\(\s*"([^"]+)",\s*caption="\.\./report/([^"]+)",\s*category="([^"]+)"', rules)
    assert {path: (category, caption) for path, caption, category in marked} == checker.FIGURES
    for _, caption in checker.FIGURES.values():
        assert (REPO / "workflow" / "report" / caption).read_text().strip()


def test_check_fails_on_a_report_without_the_figures(tmp_path):
    empty = '<script id="results">\nvar results = {};\n</script><script id="categories">\nvar categories = {};\n</script>'
    problems = checker.check_static(empty)
    assert len(problems) == len(checker.FIGURES) and all("not in the report" in p for p in problems)
    missing = checker.check(tmp_path / "report.html", chromium=None)
    assert missing and "no such file" in missing[0]


@pytest.fixture(scope="module")
def report(e2e) -> Path:
    out = e2e / "report.html"
    result = snakemake(e2e, "--configfile", str(e2e / "config.yaml"), "--report", str(out),
                       snakefile=e2e / "repo" / "Snakefile")
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.mark.slow
def test_report_embeds_every_figure_with_its_caption(report):
    assert report.stat().st_size > 100_000
    text = report.read_text()
    for path, (category, caption) in checker.FIGURES.items():
        assert Path(path).name in text, path
        assert f'"{category}"' in text, category
        first_words = " ".join(checker.squash((REPO / "workflow" / "report" / caption).read_text()).split()[:8])
        assert first_words in checker.squash(text), (path, first_words)
    assert checker.check_static(text) == []


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = chromium()
    seen = checker.render(report, browser)
    assert checker.check_rendered(seen) == []
    assert sorted(seen["figures"]) == sorted(checker.FIGURES)
    # The rendered check can fail: a figure whose PNG does not decode is reported.
    text = report.read_text()
    start = text.index("filename=label_curves.png;base64,") + len("filename=label_curves.png;base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(text[:start] + "////" + text[start + 4:])
    problems = checker.check_rendered(checker.render(broken, browser))
    assert any("label_curves.png: the image did not render" in p for p in problems), problems

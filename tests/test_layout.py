"""Tests mirror the source: `src/iclgd/<pkg>/<module>.py` is tested by `tests/<pkg>/test_<module>.py`, and every
test module under `tests/<pkg>/` tests an existing library module (conftest.py and __init__.py aside). Exempt:
tests/workflow/ (the DAG's tests) and the top-level tests/test_*.py (repository-wide checks); shared helpers are
tests/*_support.py and the conftest.py files. Every test package has an __init__.py, so that same-named test
modules of two packages (tests/kernel/test_claims.py, tests/labels/test_claims.py) do not clash."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC, TESTS = REPO / "src" / "iclgd", REPO / "tests"
#: Test directories that mirror no library package.
EXEMPT = {"workflow"}


def untested(src: Path, tests: Path) -> list[str]:
    """Library modules (at any depth, __init__.py aside) without their mirrored test module."""
    return [f"{path.relative_to(src).as_posix()}: no {mirror(path, src, tests).relative_to(tests).as_posix()}"
            for path in sorted(src.rglob("*.py"))
            if path.name != "__init__.py" and not mirror(path, src, tests).is_file()]


def mirror(module: Path, src: Path, tests: Path) -> Path:
    return tests / module.parent.relative_to(src) / f"test_{module.name}"


def orphans(src: Path, tests: Path) -> list[str]:
    """Test modules under tests/<pkg>/ that mirror no library module, and other Python files there that are
    neither a test module nor conftest.py / __init__.py; deeper test directories are not part of the layout."""
    found = []
    for path in sorted(tests.glob("*/**/*.py")):
        rel = path.relative_to(tests)
        if rel.parts[0] in EXEMPT or "__pycache__" in rel.parts:
            continue
        if len(rel.parts) > 2:
            found.append(f"{rel.as_posix()}: tests/<pkg>/ holds modules only, no deeper directories")
        elif path.name.startswith("test_"):
            module = src / rel.parts[0] / path.name.removeprefix("test_")
            if not module.is_file():
                found.append(f"{rel.as_posix()}: no library module {module.relative_to(src).as_posix()}")
        elif path.name not in ("conftest.py", "__init__.py"):
            found.append(f"{rel.as_posix()}: neither a test module nor conftest.py (helpers: tests/*_support.py)")
    return found


def without_init(tests: Path) -> list[str]:
    """Test package directories without an __init__.py."""
    return [d.name for d in sorted(tests.iterdir())
            if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").is_file()]


def test_every_library_module_has_its_mirrored_test_module():
    assert untested(SRC, TESTS) == []


def test_every_test_module_under_a_package_mirrors_a_library_module():
    assert orphans(SRC, TESTS) == []


def test_every_test_package_has_an_init():
    assert without_init(TESTS) == []


def test_the_checks_see_a_missing_mirror_an_orphan_and_a_missing_init(tmp_path):
    src, tests = tmp_path / "src", tmp_path / "tests"
    for rel in ("core/__init__.py", "core/stats.py", "core/power.py", "toy/study.py"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("")
    for rel in ("core/__init__.py", "core/conftest.py", "core/test_stats.py", "core/test_gone.py", "core/helpers.py",
                "toy/test_study.py", "workflow/test_dag.py", "test_repo.py"):
        (tests / rel).parent.mkdir(parents=True, exist_ok=True)
        (tests / rel).write_text("")
    assert untested(src, tests) == ["core/power.py: no core/test_power.py"]
    assert orphans(src, tests) == [
        "core/helpers.py: neither a test module nor conftest.py (helpers: tests/*_support.py)",
        "core/test_gone.py: no library module core/gone.py",
    ]
    assert without_init(tests) == ["toy", "workflow"]

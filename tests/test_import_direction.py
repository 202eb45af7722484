"""Which package may import which, read from the source (ast; nothing is imported).

`iclgd.core` is the science core: it imports neither `iclgd.tools` nor any study package. A study package
(every subpackage of iclgd but core and tools, found on disk) imports `iclgd.core` and itself only, never
`iclgd.tools` or another study, unless the pair is a declared interface in DECLARED. `iclgd.tools` (bench,
shape run, GPU checks, Slurm profile, cost table) may import anything. Every import counts: `import x` and
`from x import y`, at module level or inside a function, absolute or relative.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "iclgd"
CORE, TOOLS = "core", "tools"
#: Declared study -> other-module interfaces: (importer study, imported module) -> why it is allowed.
DECLARED: dict[tuple[str, str], str] = {
    ("compare", "iclgd.finetune.report"): "compare compares ICL with the fine-tuned run finetune selects on dev "
                                          "accuracy (finetune.report.selected_records): one selection for both",
}


def studies(src_root: Path) -> set[str]:
    """The study packages: every subpackage of iclgd other than core and tools."""
    return {d.name for d in (src_root / ROOT).iterdir()
            if (d / "__init__.py").is_file() and d.name not in (CORE, TOOLS)}


def module_name(src_root: Path, path: Path) -> tuple[str, str]:
    """(module, package) of a source file: iclgd/core/x.py -> (iclgd.core.x, iclgd.core); a package's
    __init__.py is its own package."""
    parts = list(path.relative_to(src_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _existing(src_root: Path, module: str, name: str) -> str:
    """`from module import name`: module.name where that is a module or package on disk, else module."""
    candidate = src_root.joinpath(*module.split("."), name)
    return f"{module}.{name}" if candidate.with_suffix(".py").is_file() or candidate.is_dir() else module


def imports(src_root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones resolved against its package."""
    package = module_name(src_root, path)[1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                yield node.lineno, _existing(src_root, module, alias.name) if alias.name != "*" else module


def _subpackage(module: str) -> str | None:
    """iclgd.<sub>.… -> sub; None outside iclgd or for iclgd itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == ROOT and len(parts) > 1 else None


def violations(src_root: Path) -> list[str]:
    """Every import under src_root/iclgd that breaks the direction rules, as 'file:line: importer imports
    imported (rule)'."""
    study_names = studies(src_root)
    found = []
    for path in sorted((src_root / ROOT).rglob("*.py")):
        importer = module_name(src_root, path)[0]
        own = _subpackage(importer)
        if own not in study_names | {CORE}:
            continue  # iclgd/__init__.py and iclgd.tools: anything goes
        for line, imported in sorted(imports(src_root, path)):
            sub = _subpackage(imported)
            if own == CORE and (sub == TOOLS or sub in study_names):
                rule = "core imports neither tools nor a study"
            elif own in study_names and (sub == TOOLS or (sub in study_names and sub != own)):
                if (own, imported) in DECLARED:
                    continue
                rule = f"study {own} imports core and itself only"
            else:
                continue
            found.append(f"{path.relative_to(src_root).as_posix()}:{line}: {importer} imports {imported} ({rule})")
    return found


def test_imports_point_towards_the_core():
    assert studies(SRC) >= {"finetune", "kernel", "labels"} and not studies(SRC) & {CORE, TOOLS}
    assert violations(SRC) == []


def test_declared_interfaces_exist():
    """A declared pair names a real study and module, and is still imported (else drop it from DECLARED)."""
    used = {(_subpackage(module_name(SRC, p)[0]), imported)
            for p in (SRC / ROOT).rglob("*.py") for _, imported in imports(SRC, p)}
    assert set(DECLARED) <= used


@pytest.fixture
def src_copy(tmp_path) -> Path:
    shutil.copytree(SRC / ROOT, tmp_path / ROOT, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _a_module(src_root: Path, package: str) -> Path:
    """A module of the package to plant an import in (its __init__.py where it has no other)."""
    return sorted((src_root / ROOT / package).glob("*.py"))[-1]


def _plant(path: Path, source: str, where: str = "top") -> None:
    """Add an import to a copied module: at its end, or inside a new function there."""
    text = path.read_text(encoding="utf-8")
    if where == "top":
        path.write_text(text + f"\n{source}\n", encoding="utf-8")
    else:
        path.write_text(text + f"\n\ndef _planted():\n    {source}\n", encoding="utf-8")


@pytest.mark.parametrize("source,imported,where", [
    ("from iclgd.tools import bench", "iclgd.tools.bench", "top"),
    ("import iclgd.tools.cost", "iclgd.tools.cost", "function"),
    ("from ..tools.shape_run import SHAPES", "iclgd.tools.shape_run", "function"),
    ("from iclgd import tools", "iclgd.tools", "top"),
])
def test_core_importing_tools_is_reported(src_copy, source, imported, where):
    assert violations(src_copy) == []
    module = _a_module(src_copy, CORE)
    _plant(module, source, where)
    (found,) = violations(src_copy)
    assert found.startswith(f"{module.relative_to(src_copy).as_posix()}:") and f" imports {imported} " in found


def test_core_importing_a_study_is_reported(src_copy):
    study = sorted(studies(src_copy))[0]
    module = _a_module(src_copy, CORE)
    _plant(module, f"from iclgd.{study} import x", "function")
    (found,) = violations(src_copy)
    assert found.startswith(f"{module.relative_to(src_copy).as_posix()}:") and f" imports iclgd.{study} " in found


def test_study_importing_another_study_or_tools_is_reported(src_copy):
    first, other = sorted(studies(src_copy))[:2]
    module = _a_module(src_copy, first)
    _plant(module, f"from iclgd.{other} import x")
    _plant(module, "from ..tools import gpu_check", "function")  # from iclgd.<study>.<module>: .. is iclgd
    _plant(module, "from .. import tools")
    found = violations(src_copy)
    rel = module.relative_to(src_copy).as_posix()
    assert [f.split(":")[0] for f in found] == [rel] * 3
    assert [f.split(" imports ")[1].split(" (")[0] for f in found] == [
        f"iclgd.{other}", "iclgd.tools.gpu_check", "iclgd.tools"]


def test_study_importing_itself_and_core_is_fine(src_copy):
    study = sorted(studies(src_copy))[0]
    module = _a_module(src_copy, study)
    _plant(module, f"from iclgd.{study} import x\nfrom . import y\nfrom ..core import metrics\nimport iclgd.core.stats")
    assert violations(src_copy) == []


def test_a_declared_pair_is_allowed(src_copy, monkeypatch):
    first, other = sorted(studies(src_copy))[-2:]
    module = _a_module(src_copy, first)
    target = next(name for p in sorted((src_copy / ROOT / other).glob("*.py"))
                  if (first, name := module_name(src_copy, p)[0]) not in DECLARED)
    _plant(module, f"from {target} import x")
    (found,) = violations(src_copy)
    assert f" imports {target} " in found
    monkeypatch.setitem(DECLARED, (first, target), "planted")
    assert violations(src_copy) == []

"""Small modules and short functions: no library module over 350 lines, no function over 60 (read from the
source with ast), so that a module reads as one idea and a function as one step."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "iclgd"
MAX_MODULE, MAX_FUNCTION = 350, 60


def too_long(root: Path) -> list[str]:
    """'path: N lines' for every module over MAX_MODULE, 'path:line name: N lines' for every function over
    MAX_FUNCTION."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE:
            found.append(f"{path.relative_to(root)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {lines} lines")
    return found


def test_no_module_or_function_is_too_long():
    assert too_long(SRC) == []


def test_the_check_sees_a_long_module_and_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n" + "\n" * MAX_MODULE)
    assert too_long(tmp_path) == ["long.py: 411 lines", "long.py:1 f: 61 lines"]

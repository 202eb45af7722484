"""Route a Snakemake script's logging and stderr (tqdm, warnings) into its rule's log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def to_file(path: str | Path) -> logging.Logger:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the job
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    return logging.getLogger("iclgd")

"""Model provenance for the paper: package, version and GGUF checksum of every model used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from iclgd.models import PROVENANCE
from iclgd.paper import booktabs_table, macro_name


def read_model_records(model_dirs: Iterable[str | Path]) -> list[dict[str, Any]]:
    return [json.loads((Path(d) / PROVENANCE).read_text()) for d in model_dirs]


def setup_macros(records: list[dict], datasets: list[str], icl: dict, n_test: int) -> dict[str, str]:
    """Counts the setup section quotes: models, datasets, seeds, k grid."""
    macros = {
        "NModels": str(len(records)),
        "NDatasets": str(len(datasets)),
        "DatasetList": ", ".join(d.replace("_", r"\_") for d in datasets),
        "KGrid": ", ".join(str(k) for k in icl["k"]),
        "NTestConfig": str(n_test),
    }
    for rec in records:
        if "gguf_sha256" in rec:
            macros[macro_name("sha", rec["name"])] = rec["gguf_sha256"][:12]
    return macros


def models_table(records: list[dict]) -> str:
    rows = [
        {
            "model": r["name"],
            "source": r.get("package", r.get("path", r.get("tokenizer_from", ""))),
            "version": r.get("package_version", "--"),
            "weights": r.get("gguf_file", r["source"]),
            "sha256 (12)": r.get("gguf_sha256", "--")[:12],
        }
        for r in records
    ]
    return booktabs_table(
        pd.DataFrame(rows),
        caption="Models and the exact files their weights come from (rule \\texttt{model\\_provenance}). "
        "GGUF weights are 4-bit quantised and dequantised to float32 once.",
        label="tab:models",
    )

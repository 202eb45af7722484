"""A study's claim rows on disk: each study with claims writes its tested rows (with the `plan` of each test's
power: fitted variance parts, bootstrap draws) and its exact rows to `results/claims/<study>.pkl` in its own
rule; rule claims reads every study's file into the claims table (iclgd.core.claims). A pickle, because the
plans hold the fitted objects the power analysis rescales; the readable view is results/stats/claims.csv."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class ClaimRows:
    """One study's rows: `tested` (statistical tests) and `exact` (a criterion met or not)."""

    study: str
    tested: pd.DataFrame
    exact: pd.DataFrame = field(default_factory=pd.DataFrame)


def write(path: str | Path, rows: ClaimRows) -> None:
    """Write a study's claim rows, all or nothing (a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(rows, protocol=5))
    tmp.replace(path)


def read(path: str | Path) -> ClaimRows:
    """A study's claim rows as `write` wrote them."""
    rows = pickle.loads(Path(path).read_bytes())
    if not isinstance(rows, ClaimRows):
        raise TypeError(f"{path}: not a study's claim rows (iclgd.core.claim_rows.write)")
    return rows

"""A study's claim rows as its rule writes them and rule claims reads them back (iclgd.core.claim_rows)."""

from __future__ import annotations

import pandas as pd
import pytest

from claims_support import toy_row
from iclgd.core import claim_rows


def test_claim_rows_survive_the_round_trip(tmp_path):
    rows = claim_rows.ClaimRows("toy", pd.DataFrame([toy_row()]))
    claim_rows.write(tmp_path / "toy.pkl", rows)
    back = claim_rows.read(tmp_path / "toy.pkl")
    assert back.study == "toy" and back.exact.empty
    pd.testing.assert_frame_equal(back.tested, rows.tested)
    (tmp_path / "other.pkl").write_bytes((tmp_path / "toy.pkl").read_bytes()[:20])
    with pytest.raises(Exception):
        claim_rows.read(tmp_path / "other.pkl")

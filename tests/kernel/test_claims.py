"""Han et al.'s claim row (iclgd.kernel.claims): the exact McNemar test of the selected head against the
constant vote, with its plan."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats as sps

from claims_support import han_summary
from iclgd.kernel import claims as kernel_claims


def test_kernel_claims_rows_carry_the_mcnemar_plan():
    row = kernel_claims.kernel_claims(han_summary(18, 2, 48, 32)).iloc[0]
    assert (row["family"], row["test"], row["unit"], row["n"], row["expected_sign"]) == (
        "han_kernel", "mcnemar-exact", "held-out queries", 100, 1)
    assert row["effect"] == pytest.approx(0.16) and row["baseline"] == pytest.approx(0.5)
    assert row["plan"]["discordant"] == pytest.approx(0.2) and row["plan"]["n"] == 100
    assert row["p"] == pytest.approx(sps.binom.sf(17, 20, 0.5))  # P(Bin(20, 1/2) >= 18)
    assert kernel_claims.kernel_claims(pd.DataFrame()).empty

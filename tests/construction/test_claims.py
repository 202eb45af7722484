"""The construction's exact claim rows (iclgd.construction.claims): reproduced when each criterion holds, not
reproduced when it fails."""

from __future__ import annotations

import pandas as pd

from claims_support import construction
from iclgd.construction import claims as construction_claims


def test_construction_claims_fail_when_the_criterion_fails():
    sparsity = pd.DataFrame({"proj": ["q_proj"], "threshold": [1e-3], "measured": [0.9], "constructed": [0.99]})
    table = construction_claims.construction_claims({"final_pred_cosine": 0.5, "order_std_constructed": 1e-3}, sparsity, 1e-3)
    assert table["verdict"].tolist() == ["not reproduced"] * 3
    ok = construction()
    assert ok["verdict"].tolist() == ["reproduced"] * 3

"""compare.claims: Shen et al.'s reference claim (ICL agrees more with its permuted self than with GD), crossed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iclgd.compare import claims


def test_permutation_claim_is_crossed_and_detects_a_planted_gap():
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(3):
        for uid in range(30):
            base = {"model": "m", "dataset": "d", "k": 2, "seed": seed, "uid": uid, "subset": "all", "lr": 0.0,
                    "epoch": 0, "order": 0}
            rows.append(base | {"method": "finetune", "optimizer": "gd", "token_overlap": 0.4 + 0.05 * rng.standard_normal()})
            for order in (1, 2):  # two permuted orders: averaged within (set, example) before the gap
                rows.append(base | {"method": "icl_permuted", "optimizer": "none", "subset": "none", "order": order,
                                    "token_overlap": 0.7 + 0.05 * rng.standard_normal()})
    out = claims.permutation_claims(pd.DataFrame(rows), alpha=0.05)
    assert len(out) == 1 and out["family"].iloc[0] == "shen_permuted"
    assert (out["n_sets"].iloc[0], out["n_examples"].iloc[0], out["n"].iloc[0]) == (3, 30, 3)
    assert out["n_obs"].iloc[0] == 90  # one gap per (set, example), not one per permuted order
    assert out["effect"].iloc[0] == pytest.approx(0.3, abs=0.03) and out["p"].iloc[0] < 1e-3
    assert out["effect_lo"].iloc[0] > 0.2

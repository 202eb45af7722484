"""Order spreads (iclgd.order.spread): per-example and averaged spreads across demonstration orderings by hand,
and the streaming (Welford) spread over the full vocabulary against numpy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from iclgd.order import spread as order_spread
from records_support import rec


def test_welford_hand_case_and_numpy_agreement():
    acc = order_spread.Welford()
    acc.update(np.array([[1.0, 0.0, 0.0, 0.0]]))
    acc.update(np.array([[0.0, 1.0, 0.0, 0.0]]))
    # sd over the two orderings: [0.5, 0.5, 0, 0] -> mean 0.25; variances sum to 0.5 -> sqrt 0.7071
    out = acc.summary()
    assert out["vocab"][0] == pytest.approx(0.25)
    assert out["vocab_l2"][0] == pytest.approx(math.sqrt(0.5))
    rng = np.random.default_rng(0)
    xs = rng.dirichlet(np.ones(7), size=(5, 3))  # 5 orderings, 3 queries, 7 tokens
    acc = order_spread.Welford()
    for x in xs:
        acc.update(x)
    np.testing.assert_allclose(acc.summary()["vocab"], xs.std(axis=0).mean(axis=1), rtol=1e-12)


def test_welford_identical_updates_spread_exactly_zero():
    acc = order_spread.Welford()
    x = np.random.default_rng(1).dirichlet(np.ones(50), size=4)
    for _ in range(10):
        acc.update(x)
    assert (acc.summary()["vocab"] == 0).all() and (acc.summary()["vocab_l2"] == 0).all()
    single = order_spread.Welford()
    single.update(x)
    assert (single.summary()["vocab"] == 0).all()


def test_order_spread_constant_and_hand_case():
    same = [rec(0, [0.6, 0.2], [1, 2], [0.6, 0.2], order=o) for o in range(3)]
    row = order_spread.order_spread(pd.DataFrame(same)).iloc[0]
    assert row["n_orders"] == 3
    spreads = row[["label_std", "vocab_label_std", "top10_std", "top1_std"]].to_numpy(dtype=float)
    np.testing.assert_allclose(spreads, 0.0, atol=1e-12)  # float mean of equal values may differ by 1 ulp

    # uid 0, two orderings:
    #   label probs (0.6, 0.2) -> (0.75, 0.25); (0.2, 0.2) -> (0.5, 0.5); ddof 0 std of two values = |a - b| / 2
    #   label_std = mean(0.125, 0.125) = 0.125; vocab_label_std = mean(|0.6-0.2|/2, 0) = 0.1
    #   top-10 {1: 0.6, 2: 0.2} vs {1: 0.2, 3: 0.2}: token 1 (0.6, 0.2) -> 0.2, token 2 (0.2, 0) -> 0.1,
    #   token 3 (0, 0.2) -> 0.1; top10_std = 0.4 / 3; top1 (0.6, 0.2) -> 0.2
    # uid 1 is constant (all 0), so every group mean is half of uid 0's value
    recs = pd.DataFrame([
        rec(0, [0.6, 0.2], [1, 2], [0.6, 0.2], order=0), rec(0, [0.2, 0.2], [1, 3], [0.2, 0.2], order=1),
        rec(1, [0.3, 0.3], [1, 2], [0.3, 0.2], order=0), rec(1, [0.3, 0.3], [1, 2], [0.3, 0.2], order=1),
    ])
    per = order_spread.order_spread_examples(recs).set_index("uid")
    assert per.loc[0, "label_std"] == pytest.approx(0.125)
    assert per.loc[0, "vocab_label_std"] == pytest.approx(0.1)
    assert per.loc[0, "top10_std"] == pytest.approx(0.4 / 3)
    assert per.loc[0, "top1_std"] == pytest.approx(0.2)
    row = order_spread.order_spread(recs).iloc[0]
    assert row["n_orders"] == 2 and row["n_examples"] == 2
    assert row["label_std"] == pytest.approx(0.0625)
    assert row["vocab_label_std"] == pytest.approx(0.05)
    assert row["top10_std"] == pytest.approx(0.2 / 3)
    # ddof = 1 (sample std of two values = |a - b| / sqrt 2): 0.125 * sqrt 2 for uid 0, half of that in the mean
    assert order_spread.order_spread(recs, ddof=1).iloc[0]["label_std"] == pytest.approx(0.0625 * math.sqrt(2))


def test_order_spread_single_ordering_and_errors():
    one = pd.DataFrame([rec(0, [0.6, 0.2], [1, 2], [0.6, 0.2], k=1)])
    row = order_spread.order_spread(one, ddof=1).iloc[0]  # 0 by definition, not NaN, even with ddof = 1
    assert row["n_orders"] == 1 and row["label_std"] == 0.0 and row["top10_std"] == 0.0
    with pytest.raises(ValueError):
        order_spread.order_spread(one.iloc[:0])
    with pytest.raises(ValueError, match="duplicate"):
        order_spread.order_spread(pd.concat([one, one]))

"""ICL-vs-GD comparison metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from iclgd.compare import distributions as compare
from records_support import rec

TEN = list(range(10))


# --- Shen et al.: top-10 agreement -------------------------------------------------------------------------


def test_token_overlap():
    assert compare.token_overlap(TEN, [0, 1, 2, 20, 21, 22, 23, 24, 25, 26]) == pytest.approx(0.3)  # 3 / 10
    assert compare.token_overlap(TEN, TEN[::-1]) == 1.0  # same set, any order
    assert compare.token_overlap(TEN, range(10, 20)) == 0.0
    with pytest.raises(ValueError):
        compare.token_overlap(TEN, [1, 2])


def test_overlap_cosine_aligns_by_token_id():
    # shared tokens 1 and 2: a = (0.5, 0.2), b = (0.4, 0.1) (b lists them in another order)
    # cos = (0.5*0.4 + 0.2*0.1) / (sqrt(0.25+0.04) * sqrt(0.16+0.01)) = 0.22 / sqrt(0.29*0.17) = 0.990830
    got = compare.overlap_cosine([1, 2, 3], [0.5, 0.2, 0.1], [4, 2, 1], [0.3, 0.1, 0.4])
    assert got == pytest.approx(0.22 / math.sqrt(0.29 * 0.17))
    assert got == pytest.approx(0.990830, abs=1e-6)
    assert math.isnan(compare.overlap_cosine([1, 2], [0.5, 0.2], [3, 4], [0.5, 0.2]))


# --- shift from zero-shot ----------------------------------------------------------------------------------


def test_label_kl_and_entropy_change_two_classes():
    # method label-token probs (0.4, 0.1) renormalise to p = (0.8, 0.2); zero-shot (0.3, 0.2) to q = (0.6, 0.4)
    p, q = np.log([0.4, 0.1]), np.log([0.3, 0.2])
    # KL = 0.8 ln(0.8/0.6) + 0.2 ln(0.2/0.4) = 0.230146 - 0.138629 = 0.091516
    assert compare.label_kl(p, q) == pytest.approx(0.8 * math.log(4 / 3) + 0.2 * math.log(0.5))
    assert compare.label_kl(p, q) == pytest.approx(0.091516, abs=1e-6)
    # H(p) = -(0.8 ln 0.8 + 0.2 ln 0.2) = 0.500402; H(q) = -(0.6 ln 0.6 + 0.4 ln 0.4) = 0.673012
    assert compare.entropy_change(p, q) == pytest.approx(0.500402 - 0.673012, abs=1e-6)
    assert compare.label_kl(p, p) == 0.0
    assert compare.label_kl(p, p + 3.0) == pytest.approx(0.0, abs=1e-12)  # only the renormalised shape counts


def test_coarse_kl_hand_case():
    # shared token 1: p = 0.5, q = 0.25; rest p = 1 - 0.5 = 0.5, rest q = 1 - 0.25 = 0.75
    # KL = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.346574 - 0.202733 = 0.143841
    got = compare.coarse_kl_lower_bound([1, 2], [0.5, 0.3], [3, 1], [0.5, 0.25])
    assert got == pytest.approx(0.143841, abs=1e-6)
    assert compare.coarse_kl_lower_bound([1, 2], [0.5, 0.3], [3, 4], [0.5, 0.3]) == 0.0  # disjoint: trivial bound


def _topk(full, k=10):
    ids = np.argsort(-full)[:k]
    return ids, full[ids]


def exact_kl(p, q):
    return float(np.sum(p * np.log(p / q)))


@pytest.mark.parametrize("seed", range(8))
def test_coarse_kl_lower_bounds_full_vocab_kl(seed):
    rng = np.random.default_rng(seed)
    vocab = 40
    base = rng.normal(size=vocab) * 2
    p = np.exp(base) / np.exp(base).sum()
    shifted = base + rng.normal(size=vocab)  # related distributions so the top-10s overlap
    q = np.exp(shifted) / np.exp(shifted).sum()
    bound = compare.coarse_kl_lower_bound(*_topk(p), *_topk(q))
    assert 0.0 <= bound <= exact_kl(p, q) + 1e-12
    # a vocabulary of exactly 10 tokens: the top-10 is everything, nothing is merged, the bound is exact
    p10, q10 = p[:10] / p[:10].sum(), q[:10] / q[:10].sum()
    assert compare.coarse_kl_lower_bound(*_topk(p10), *_topk(q10)) == pytest.approx(exact_kl(p10, q10))


def test_shift_cosine():
    zero = np.array([-1.0, -2.0])
    assert compare.shift_cosine(zero + [0.5, -0.5], zero + [1.0, -1.0], zero) == pytest.approx(1.0)  # same direction
    assert compare.shift_cosine(zero + [0.5, -0.5], zero + [-2.0, 2.0], zero) == pytest.approx(-1.0)
    assert compare.shift_cosine(zero + [1.0, 0.0], zero + [0.0, 1.0], zero) == pytest.approx(0.0)  # orthogonal
    assert math.isnan(compare.shift_cosine(zero, zero + [1.0, 0.0], zero))


# --- pairing and the table ---------------------------------------------------------------------------------


def test_pair_rejects_duplicate_keys_and_empty_join():
    a = pd.DataFrame([rec(0, [0.5, 0.5], TEN, [0.1] * 10)])
    b = pd.DataFrame([rec(0, [0.5, 0.5], TEN, [0.1] * 10, method="finetune", optimizer="gd", lr=lr)
                      for lr in (1e-4, 1e-3)])
    with pytest.raises(ValueError, match=r"\['model', 'dataset', 'k', 'seed', 'uid'\]"):
        compare.pair(a, b)
    joined = compare.pair(a, b.iloc[:1])
    assert len(joined) == 1 and {"lr_a", "lr_b", "uid"} <= set(joined.columns)
    with pytest.raises(ValueError, match="no common"):
        compare.pair(a, b.iloc[:1].assign(uid=9))


def test_comparison_table_hand_case():
    high = [0.4, 0.3, 0.1, 0.05, 0.05, 0.04, 0.03, 0.02, 0.005, 0.005]
    zero = pd.DataFrame([
        rec(0, [0.2, 0.3], TEN, high, k=0, full_correct=False),  # label-wrong (gold 0)
        rec(1, [0.2, 0.3], TEN, high, k=0, full_correct=False),  # label-wrong
    ])
    icl = pd.DataFrame([
        rec(0, [0.6, 0.2], TEN, high, full_correct=True),
        rec(1, [0.2, 0.6], range(10, 20), high, full_correct=False),  # disjoint top-10 from fine-tuning
    ])
    ft = pd.DataFrame([
        rec(uid, [0.6, 0.2], TEN, high, method="finetune", optimizer=opt, lr=1e-3, full_correct=True)
        for opt in ("gd", "adam") for uid in (0, 1)
    ])
    ex = compare.compare_examples(icl, ft, zero)
    assert len(ex) == 4 and set(ex["optimizer"]) == {"gd", "adam"}
    table = compare.comparison_table(icl, ft, zero)
    assert len(table) == 2  # one row per optimizer
    row = table.set_index("optimizer").loc["gd"]
    # overlap: uid 0 same ids -> 1.0, uid 1 disjoint -> 0.0; mean 0.5
    assert row["token_overlap"] == pytest.approx(0.5)
    # cosine: uid 0 identical probs -> 1.0; uid 1 undefined, left out of the mean and counted
    assert row["overlap_cosine"] == pytest.approx(1.0) and row["overlap_cosine_undefined"] == 1
    assert row["acc_full_icl"] == 0.5 and row["acc_full_other"] == 1.0 and row["acc_full_zero"] == 0.0
    # both ZS wrong, FT right on both -> n = 2; ICL label-right on uid 0 only -> 1/2
    assert row["rec2ftp_n"] == 2 and row["rec2ftp"] == pytest.approx(0.5)
    # uid 0: ICL and FT identical -> KL equal; label dist (0.75, 0.25) vs zero-shot (0.4, 0.6):
    # KL = 0.75 ln(0.75/0.4) + 0.25 ln(0.25/0.6) = 0.471457 - 0.218866 = 0.252591 (both uids for FT)
    assert row["label_kl_other"] == pytest.approx(0.75 * math.log(0.75 / 0.4) + 0.25 * math.log(0.25 / 0.6))
    # shift cosine: uid 0 same shift -> 1; uid 1 ICL shift log(0.2/0.2, 0.6/0.3) = (0, ln 2) vs
    # FT shift (ln 3, ln(2/3)): cos = ln2 ln(2/3) / (ln2 sqrt(ln²3 + ln²(2/3))) = -0.405465 / 1.172966
    uid1 = math.log(2 / 3) / math.hypot(math.log(3), math.log(2 / 3))
    assert row["shift_cosine"] == pytest.approx((1 + uid1) / 2)
    with pytest.raises(ValueError, match="duplicate"):
        compare.comparison_table(pd.concat([icl, icl.assign(order=1)]), ft, zero)  # two ICL orderings

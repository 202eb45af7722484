"""Kossen et al.'s claim rows (iclgd.labels.claims): t tests over contexts, one Holm family per claim, and the
novel task's flipped-label contrast as a negative control."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from iclgd.labels import claims as kossen_claims
from iclgd.labels import curves


def kossen_table(gap: float, reps: int = 10, n: int = 9, dataset: str = "d") -> pd.DataFrame:
    """Default contexts put log-prob margin 1 + `gap` on the true label, random ones margin 1, per position."""
    rng = np.random.default_rng(0)
    true = rng.integers(0, 2, size=(reps, n))
    frames = []
    for cond, margin in (("default", 1.0 + gap), ("random", 1.0)):
        noise = rng.normal(0, 0.01, size=(reps, n))
        logits = np.stack([np.where(true == c, margin + noise, 0.0) for c in (0, 1)], axis=-1)
        logprobs = logits - np.logaddexp(logits[..., :1], logits[..., 1:])
        frames.append(curves.curve_frame(logprobs, true, true, {"model": "m", "dataset": dataset, "condition": cond},
                                         range(reps)))
    return pd.concat(frames, ignore_index=True)


def flip_table(dataset: str, reps: int = 10, n: int = 9) -> pd.DataFrame:
    """Default and flipped contexts with random label log-probs (no preference either way)."""
    rng = np.random.default_rng(1)
    true = rng.integers(0, 2, size=(reps, n))
    frames = []
    for cond, presented in (("default", true), ("flipped", 1 - true)):
        logits = rng.normal(0, 1, size=(reps, n, 2))
        logprobs = logits - np.logaddexp(logits[..., :1], logits[..., 1:])
        frames.append(curves.curve_frame(logprobs, true, presented, {"model": "m", "dataset": dataset,
                                                                     "condition": cond}, range(reps)))
    return pd.concat(frames, ignore_index=True)


def test_kossen_labels_matter_is_a_t_test_over_contexts(default_config):
    cfg = {**default_config["labels"], "skip_first": 2, "n_demos": 9, "conditions": ["default", "random"]}
    planted = kossen_claims.kossen_tests(kossen_table(1.0), cfg, n_boot=200, ci=0.95, seed=0, alpha=0.05)
    row = planted.iloc[0]
    assert row["family"] == "kossen_labels_matter_loglik_default_random"
    assert (row["test"], row["unit"], row["n"], row["n_contexts"]) == ("t", "contexts", 10, 10)
    # log-lik of the true label is -log(1 + e^-margin): margin 2 vs 1 -> log(1 + e^-1) - log(1 + e^-2) = 0.1863
    assert row["effect"] == pytest.approx(math.log1p(math.exp(-1)) - math.log1p(math.exp(-2)), abs=0.01)
    samples = curves.claim_samples(kossen_table(1.0), cfg, n_boot=200, ci=0.95, seed=0)
    gaps = samples[(samples["claim"] == "labels_matter") & (samples["metric"] == "loglik")]["samples"].iloc[0]
    assert len(gaps) == 10
    assert row["p"] == pytest.approx(sps.ttest_1samp(gaps, 0.0).pvalue) and row["p"] < 1e-6
    assert row["plan"] == {"test": "t", "n": 10, "sd": pytest.approx(np.std(gaps, ddof=1)), "se": pytest.approx(
        np.std(gaps, ddof=1) / math.sqrt(10)), "df": 9.0, "max_effect": pytest.approx(50 * np.std(gaps, ddof=1))}
    # the two flip_learned contrasts are different claims, so they never share a Holm family
    families = [kossen_claims.kossen_family(c, m, contrast) for c, contrast, m, *_ in kossen_claims.KOSSEN]
    assert len(set(families)) == len(kossen_claims.KOSSEN) == 4
    null = kossen_claims.kossen_tests(kossen_table(0.0), cfg, n_boot=200, ci=0.95, seed=0, alpha=0.05).iloc[0]
    assert null["p"] > 0.05


def test_kossen_novel_task_default_minus_flipped_is_a_negative_control(default_config):
    cfg = {**default_config["labels"], "skip_first": 2, "n_demos": 9, "conditions": ["default", "flipped"]}
    novel = default_config["labels"]["novel"]["name"]
    table = pd.concat([flip_table("sst2"), flip_table(novel)], ignore_index=True)
    rows = kossen_claims.kossen_tests(table, cfg, n_boot=200, ci=0.95, seed=0, alpha=0.05)
    gap = rows[rows["claim"].str.startswith("Pretraining preference")].set_index("dataset")
    assert gap.loc[novel, "family"] == "kossen_flip_learned_agree_presented_default_correct_flipped_control"
    assert bool(gap.loc[novel, "negative_control"]) and gap.loc[novel, "expected_sign"] == 0
    assert gap.loc["sst2", "family"] == "kossen_flip_learned_agree_presented_default_correct_flipped"
    assert not bool(gap.loc["sst2", "negative_control"]) and gap.loc["sst2", "expected_sign"] == 1
    # the other contrast on the novel task stays a claim
    learned = rows[(rows["dataset"] == novel) & rows["family"].str.endswith("last_position_1")]
    assert len(learned) == 1 and not bool(learned["negative_control"].iloc[0])

"""The claims stage: pairing ICL with the dev-selected fine-tuned model, families, verdicts, LaTeX."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from iclgd.core import claims, power
from iclgd.label_relationships import curves
from iclgd.icl_vs_gd import claims as shen_claims
from iclgd.kernel_regression import claims as kernel_claims
from iclgd.label_relationships import claims as kossen_claims


def records(method: str, preds: list[int], labels: list[int], k: int = 2, lr: float = 0.0, **tags) -> pd.DataFrame:
    n = len(preds)
    return pd.DataFrame({
        "model": "m", "dataset": "d", "method": method, "k": k, "seed": 0, "order": 0,
        "optimizer": tags.get("optimizer", "none"), "subset": tags.get("subset", "none"), "lr": lr,
        "epoch": tags.get("epoch", 0), "uid": tags.get("uids", list(range(n))), "label": "x",
        "label_index": labels, "pred_index": preds, "full_correct": [p == y for p, y in zip(preds, labels)],
    })


LABELS = [0, 1] * 10
# ICL right on all 20; GD right on the first 13 only -> 7 discordant pairs, all favouring ICL.
ICL_PRED = LABELS
GD_GOOD = LABELS[:13] + [1 - y for y in LABELS[13:]]
GD_BAD = [1 - y for y in LABELS]  # the other lr gets everything wrong


@pytest.fixture
def paired() -> pd.DataFrame:
    icl = pd.concat([records("icl", ICL_PRED, LABELS), records("icl", LABELS, LABELS, k=0)])
    ft = pd.concat([
        records("finetune", GD_GOOD, LABELS, lr=1e-3, optimizer="gd", subset="all", epoch=5),
        records("finetune", GD_BAD, LABELS, lr=1e-4, optimizer="gd", subset="all", epoch=5),
    ])
    # dev: lr 1e-3 right on both dev examples, lr 1e-4 wrong on both -> 1e-3 is selected
    dev = pd.concat([
        records("finetune", [0, 1], [0, 1], lr=1e-3, optimizer="gd", subset="all", epoch=5, uids=[500, 501]),
        records("finetune", [1, 0], [0, 1], lr=1e-4, optimizer="gd", subset="all", epoch=5, uids=[500, 501]),
    ])
    dev["label_logprobs"] = [np.zeros(2)] * len(dev)
    return shen_claims.paired_icl_gd(icl, ft, dev)


def test_pairing_uses_the_dev_selected_lr_and_skips_zero_shot(paired):
    assert len(paired) == 20 and set(paired["k"]) == {2}
    assert paired["correct_gd"].tolist() == [int(p == y) for p, y in zip(GD_GOOD, LABELS)]
    assert paired["variant"].unique().tolist() == ["gd/all"]


def test_mcnemar_per_setting_is_exact_and_holm_adjusted(paired):
    tests = shen_claims.icl_vs_gd_tests(paired, n_boot=200, ci=0.95, seed=0)
    row = tests[tests["family"] == "shen_icl_vs_gd_label"].iloc[0]
    # 7 discordant pairs, all ICL-only: exact two-sided binomial p = 2 * 0.5**7 = 0.015625
    assert row["p"] == pytest.approx(2 * 0.5**7)
    assert row["effect"] == pytest.approx(7 / 20)
    assert row["p_holm"] == pytest.approx(row["p"])  # a family of one
    macros = shen_claims.mcnemar_macros(tests, 0.05)
    assert macros["ShenIclVsGdLabelSig"] == "1" and macros["ShenIclVsGdLabelIclBetter"] == "1"


def test_pairing_refuses_disjoint_records():
    icl = records("icl", [0], [0])
    ft = records("finetune", [0], [0], lr=1e-3, optimizer="gd", subset="all", epoch=1, uids=[99])
    dev = ft.assign(label_logprobs=[np.zeros(2)])
    with pytest.raises(ValueError, match="share the keys"):
        shen_claims.paired_icl_gd(icl, ft, dev)


def test_no_learned_gd_run_leaves_shen_claims_untested(paired):
    """Nothing to pair (no fine-tuned run learned its demonstrations): empty tests, the pooled claim has n = 0."""
    none = paired.iloc[:0]
    assert shen_claims.icl_vs_gd_tests(none, n_boot=50, ci=0.95, seed=0).empty
    anova = shen_claims.inconsistency_anova(none)
    assert anova.empty
    macros = shen_claims.mcnemar_macros(shen_claims.icl_vs_gd_tests(none, n_boot=50, ci=0.95, seed=0), 0.05)
    assert macros["ShenIclVsGdFullVocabN"] == "0" and macros["ShenIclVsGdLabelSig"] == "0"  # main.tex uses them
    rows = shen_claims.shen_claims(none, anova, n_boot=50, ci=0.95, seed=0)
    assert rows["family"].tolist() == ["shen_pooled"] and rows["n"].tolist() == [0] and rows["p"].isna().all()


def kossen_table(gap: float, reps: int = 10, n: int = 9) -> pd.DataFrame:
    """Default contexts put log-prob `gap` more on the true label than random ones, per repetition."""
    rng = np.random.default_rng(0)
    true = rng.integers(0, 2, size=(reps, n))
    frames = []
    for cond, margin in (("default", 1.0 + gap), ("random", 1.0)):
        noise = rng.normal(0, 0.01, size=(reps, n))
        logits = np.stack([np.where(true == c, margin + noise, 0.0) for c in (0, 1)], axis=-1)
        logprobs = logits - np.logaddexp(logits[..., :1], logits[..., 1:])
        frames.append(curves.curve_frame(logprobs, true, true, {"model": "m", "dataset": "d", "condition": cond}, range(reps)))
    return pd.concat(frames, ignore_index=True)


def test_kossen_labels_matter_detects_a_planted_gap_and_not_a_null(default_config):
    cfg = {**default_config["curves"], "skip_first": 2, "n_demos": 9, "conditions": ["default", "random"]}
    planted = kossen_claims.kossen_tests(kossen_table(1.0), cfg, n_boot=200, ci=0.95, seed=0)
    row = planted.iloc[0]
    assert row["family"] == "kossen_labels_matter_loglik_default_random" and row["effect"] > 0.1
    # the two flip_learned contrasts are different claims, so they never share a Holm family
    families = [kossen_claims.kossen_family(c, m, contrast) for c, contrast, m, *_ in kossen_claims.KOSSEN]
    assert len(set(families)) == len(kossen_claims.KOSSEN) == 4
    assert row["p"] == pytest.approx(2 / 2**10)  # all 10 differences positive: exact two-sided p = 2/2^10
    null = kossen_claims.kossen_tests(kossen_table(0.0), cfg, n_boot=200, ci=0.95, seed=0).iloc[0]
    assert null["p"] > 0.05


CFG = {"alpha": 0.05, "power": 0.8, "n_sim": 300, "seed": 0, "references": {
    "shen_pooled": {"sesoi": 0.05, "why": "declared, Cohen's f^2 ~ small"},
    "kossen_x": {"seed": 0.4, "source": "Fig. 1"},
    "han_kernel": {"seed": 0.8, "level": True, "seed_baseline": 0.5, "source": "Table 2"},
}}


def kossen_row(dataset: str, effect: float, lo: float, hi: float, p: float, samples) -> dict:
    return {"paper": "K", "family": "kossen_x", "claim": "c", "model": "m", "dataset": dataset, "expected_sign": +1,
            "effect": effect, "effect_lo": lo, "effect_hi": hi, "p": p, "n": len(samples), "evidence": "",
            "target": "t", "test": "wilcoxon", "unit": "contexts", "samples": np.asarray(samples, dtype=float)}


def construction() -> pd.DataFrame:
    return shen_claims.construction_claims(
        {"final_pred_cosine": 0.9995, "order_std_constructed": 1e-16},
        pd.DataFrame({"proj": ["q_proj", "k_proj"], "threshold": [1e-3, 1e-3], "measured": [0.01, 0.02],
                      "constructed": [0.9999, 0.9999]}), 1e-3)


def test_claims_table_gives_every_verdict_with_its_power():
    rng = np.random.default_rng(0)
    shen = pd.DataFrame([{"paper": "S", "family": "shen_pooled", "claim": "c", "model": "all", "dataset": "all",
                          "expected_sign": 0, "effect": -0.1, "effect_lo": -0.2, "effect_hi": -0.05, "p": 0.001,
                          "n": 40, "sd": 0.2, "evidence": "", "target": "claims", "test": "t", "unit": "test examples"}])
    tight, wide = rng.normal(0, 0.05, 40), rng.normal(0, 2.0, 10)
    kossen = pd.DataFrame([
        kossen_row("a", 0.3, 0.1, 0.5, 0.01, tight),    # decided on the claimed side
        kossen_row("b", -0.3, -0.5, -0.1, 0.02, tight),  # decided on the other side
        kossen_row("c", 0.01, -0.02, 0.03, 0.6, tight),  # not decided; 40 tight contexts detect 0.4 easily
        kossen_row("d", 0.1, -1.0, 1.2, 0.8, wide),      # not decided; 10 noisy contexts cannot see 0.4
    ])
    kernel = kernel_claims.kernel_claims(pd.DataFrame([{
        "model": "m", "dataset": "d", "eval_agreement": 0.9, "eval_agreement_lo": 0.8, "eval_agreement_hi": 1.0,
        "eval_const_agreement": 0.5, "eval_agreement_p": 0.001, "n_eval": 30}]))
    table = claims.claims_table([shen, kossen, kernel], construction(), CFG)
    # Holm within kossen_x: sorted p 0.01, 0.02, 0.6, 0.8 -> 0.04, 0.06, 1.0, 1.0
    assert table.loc[table["family"] == "kossen_x", "p_holm"].tolist() == pytest.approx([0.04, 0.06, 1.0, 1.0])
    # ... and each row's power is computed at the level Holm compares its raw p with: alpha / (m - rank + 1)
    assert table.loc[table["family"] == "kossen_x", "alpha_holm"].tolist() == pytest.approx([0.0125, 0.05 / 3, 0.025, 0.05])
    # row b's Holm p is 0.06: not decided, so its well-powered test says "absent", not "contradicted"
    assert table["verdict"].tolist() == ["reproduced", "reproduced", "absent at adequate power",
                                         "absent at adequate power", "underpowered", "reproduced",
                                         "reproduced", "reproduced", "reproduced"]
    kd = table[table["dataset"] == "d"].iloc[0]
    assert kd["mde"] > 0.4 and kd["n_needed"] > 10 and kd["reference_kind"] == "seed"
    han = table[table["family"] == "han_kernel"].iloc[0]
    assert han["reference"] == pytest.approx(0.3) and han["effect"] == pytest.approx(0.4)  # kappa 0.6 x (1 - 0.5)
    assert han["mde"] == pytest.approx(power.binom_mde(30, 0.5, 0.05))
    assert table.loc[0, "reference_kind"] == "SESOI" and np.isnan(table.loc[0, "seed_effect"])
    assert table.loc[0, "mde"] == pytest.approx(power.t_mde(0.2, 40, 0.05))
    tex = claims.claims_tex(table)
    assert "\\ref{fig:lsa}" not in tex and "tab:claims" in tex and "$$" not in tex
    assert "$|w| < 0.001$" in tex  # no nested math
    assert tex.count("& exact &") == 3  # only the deterministic rows are "exact"
    assert tex.count("K: c [") == 1  # a family's claim text is shown once
    assert "$^\\dagger$" in tex  # the SESOI reference is marked
    macros = claims.claims_macros(table)
    assert macros["ClaimsAbsentAtAdequatePower"] == "2" and macros["ClaimsUnderpowered"] == "1"
    assert macros["ClaimKossenXMDVerdict"] == "underpowered"
    refs = claims.references_tex(table)
    assert "Table 2" in refs and "declared" in refs
    assert "f\\textasciicircum{}2 \\textasciitilde{} small" in refs  # free config text cannot break the build


def test_sizing_turns_units_needed_into_the_config_value_that_sets_them():
    samples = np.random.default_rng(0).normal(0.0, 1.0, 10)
    shen = pd.DataFrame([{"paper": "S", "family": "shen_pooled", "claim": "c", "model": "all", "dataset": "all",
                          "expected_sign": 0, "effect": 0.0, "effect_lo": -0.1, "effect_hi": 0.1, "p": 0.9, "n": 40,
                          "sd": 0.4, "evidence": "", "target": "claims", "test": "t", "unit": "test examples"}])
    kernel = kernel_claims.kernel_claims(pd.DataFrame([{
        "model": "m", "dataset": "d", "eval_agreement": 0.6, "eval_agreement_lo": 0.4, "eval_agreement_hi": 0.8,
        "eval_const_agreement": 0.5, "eval_agreement_p": 0.2, "n_eval": 9}]))
    table = claims.claims_table([shen, pd.DataFrame([kossen_row("a", 0.1, -0.5, 0.7, 0.6, samples)]), kernel],
                                construction(), CFG)
    cfg = {"data": {"n_test": 20}, "icl": {"permuted": {"n_queries": None}}, "curves": {"repetitions": 10},
           "kernel": {"n_queries": None, "n_train_queries": 10}}
    out = claims.sizing(table, cfg).set_index("family")
    # 40 clusters from n_test 20 (two datasets x models): 2 units per test example
    assert out.loc["shen_pooled", "config_key"] == "data.n_test"
    assert out.loc["shen_pooled", "needed"] == np.ceil(power.t_n(0.05, 0.4, 0.05) / 2)
    assert out.loc["kossen_x", "needed"] == out.loc["kossen_x", "n_needed"] > 10  # one unit per repetition
    # 9 held-out of 20 + 10 queries (0.3 held out): units / 0.3 queries in all, minus the 20 test queries
    han = out.loc["han_kernel"]
    assert han["needed"] == np.ceil(han["n_needed"] / 0.3 - 1e-9) - 20 and han["config_key"] == "kernel.n_train_queries"
    # the sized config powers the seed-quantified rows on the datasets the seed measured; SESOI rows are not targets
    assert out["target"].tolist() == [False, True, True]
    refs = {**CFG["references"], "kossen_x": {**CFG["references"]["kossen_x"], "datasets": ["sst2"]}}
    summary = claims.sizing_summary(claims.sizing(table, cfg | {"references": refs})).set_index("config_key")
    assert summary.loc["curves.repetitions", "target_rows"] == 0  # kossen_x's row is on dataset "a", not SST-2
    assert summary.loc["kernel.n_train_queries", "needed"] == han["needed"]
    assert summary.loc["data.n_test", "target_rows"] == 0 and np.isnan(summary.loc["data.n_test", "needed"])


def test_a_decided_test_on_the_wrong_side_is_contradicted():
    samples = np.random.default_rng(0).normal(-0.3, 0.05, 20)
    table = claims.claims_table([pd.DataFrame([kossen_row("a", -0.3, -0.32, -0.28, 1e-4, samples)])],
                                construction(), CFG)
    assert table["verdict"].iloc[0] == "contradicted"


def test_claims_table_names_a_family_without_a_reference():
    shen = pd.DataFrame([{"paper": "S", "family": "shen_new", "claim": "c", "model": "all", "dataset": "all",
                          "expected_sign": 1, "effect": 0.1, "effect_lo": 0.0, "effect_hi": 0.2, "p": 0.1, "n": 40,
                          "sd": 0.2, "test": "t", "unit": "test examples", "evidence": "", "target": "claims"}])
    with pytest.raises(ValueError, match="claims.references has no entry for claim family 'shen_new'"):
        claims.claims_table([shen], construction(), CFG)


def test_kernel_reference_carries_the_seeds_kappa_to_the_rows_baseline():
    kernel = kernel_claims.kernel_claims(pd.DataFrame([{
        "model": "m", "dataset": d, "eval_agreement": 0.9, "eval_agreement_lo": 0.8, "eval_agreement_hi": 1.0,
        "eval_const_agreement": base, "eval_agreement_p": 0.4, "n_eval": 30} for d, base in (("a", 0.8), ("b", 1.0))]))
    table = claims.claims_table([kernel], construction(), CFG)
    # seed 0.8 over 0.5 = kappa 0.6: over a 0.8 baseline that is 0.6 x 0.2 = 0.12 more agreement
    assert table["reference"].iloc[0] == pytest.approx(0.12)
    # ICL constant on the held-out part: no room above the baseline, no reference, nothing can be called absent
    assert np.isnan(table["reference"].iloc[1]) and table["verdict"].iloc[1] == "underpowered"


def test_construction_claims_fail_when_the_criterion_fails():
    sparsity = pd.DataFrame({"proj": ["q_proj"], "threshold": [1e-3], "measured": [0.9], "constructed": [0.99]})
    table = shen_claims.construction_claims({"final_pred_cosine": 0.5, "order_std_constructed": 1e-3}, sparsity, 1e-3)
    assert table["verdict"].tolist() == ["not reproduced"] * 3


def test_permutation_claim_averages_within_examples_and_detects_a_planted_gap():
    rng = np.random.default_rng(0)
    rows = []
    for uid in range(30):
        for k in (2, 4):
            base = {"model": "m", "dataset": "d", "k": k, "seed": 0, "uid": uid, "subset": "all", "lr": 0.0,
                    "epoch": 0, "order": 0}
            rows.append(base | {"method": "finetune", "optimizer": "gd", "token_overlap": 0.4 + 0.05 * rng.standard_normal()})
            rows.append(base | {"method": "icl_permuted", "optimizer": "none", "subset": "none", "order": 1,
                                "token_overlap": 0.7 + 0.05 * rng.standard_normal()})
    out = shen_claims.permutation_claims(pd.DataFrame(rows), n_boot=200, ci=0.95, seed=0)
    assert len(out) == 1 and out["n"].iloc[0] == 30  # 30 examples, not 60 (example, N) pairs
    assert out["effect"].iloc[0] == pytest.approx(0.3, abs=0.03) and out["p"].iloc[0] < 1e-4
    assert out["effect_lo"].iloc[0] > 0.25
    # null: the permuted side is GD's value plus symmetric noise -> no evidence
    null = pd.DataFrame(rows)
    is_perm = null["method"] == "icl_permuted"
    null.loc[is_perm, "token_overlap"] = null.loc[~is_perm, "token_overlap"].to_numpy() + 0.01 * rng.standard_normal(is_perm.sum())
    assert shen_claims.permutation_claims(null, n_boot=200, ci=0.95, seed=0)["p"].iloc[0] > 0.01

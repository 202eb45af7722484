"""The claims stage: pairing ICL with the dev-selected fine-tuned model, each study's tested rows, the claims
table's Holm, power and verdicts, sizing and the LaTeX views."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestPower

from iclgd.core import claims, claims_tex, crossed, power, stats
from iclgd.finetune import study as finetune_study
from iclgd.construction import claims as construction_claims
from iclgd.finetune import claims as shen_claims
from iclgd.kernel import study as kernel_study
from iclgd.kernel import claims as kernel_claims
from iclgd.kernel import summaries
from iclgd.labels import claims as kossen_claims
from iclgd.labels import curves
from iclgd.labels import study as labels_study


def records(method: str, preds: list[int], labels: list[int], k: int = 2, lr: float = 0.0, seed: int = 0,
            **tags) -> pd.DataFrame:
    n = len(preds)
    return pd.DataFrame({
        "model": "m", "dataset": "d", "method": method, "k": k, "seed": seed, "order": 0,
        "optimizer": tags.get("optimizer", "none"), "subset": tags.get("subset", "none"), "lr": lr,
        "epoch": tags.get("epoch", 0), "uid": tags.get("uids", list(range(n))), "label": "x",
        "label_index": labels, "pred_index": preds, "full_correct": [p == y for p, y in zip(preds, labels)],
    })


LABELS = [0, 1] * 10
# ICL right on all 20 examples under both demonstration seeds; the selected GD run right on the first 13
# (seed 0: 7 discordant) and the first 15 (seed 1: 5 discordant)
GD_GOOD = {0: LABELS[:13] + [1 - y for y in LABELS[13:]], 1: LABELS[:15] + [1 - y for y in LABELS[15:]]}
GD_BAD = [1 - y for y in LABELS]  # the other lr gets everything wrong
GD_KW = {"optimizer": "gd", "subset": "all", "epoch": 5}


@pytest.fixture
def paired() -> pd.DataFrame:
    icl, ft, dev = [], [], []
    for seed in (0, 1):
        icl += [records("icl", LABELS, LABELS, seed=seed), records("icl", LABELS, LABELS, k=0, seed=seed)]
        ft += [records("finetune", GD_GOOD[seed], LABELS, lr=1e-3, seed=seed, **GD_KW),
               records("finetune", GD_BAD, LABELS, lr=1e-4, seed=seed, **GD_KW)]
        # dev: lr 1e-3 right on both dev examples, lr 1e-4 wrong on both -> 1e-3 is selected for each seed
        dev += [records("finetune", [0, 1], [0, 1], lr=1e-3, seed=seed, uids=[500, 501], **GD_KW),
                records("finetune", [1, 0], [0, 1], lr=1e-4, seed=seed, uids=[500, 501], **GD_KW)]
    dev = pd.concat(dev, ignore_index=True)
    dev["label_logprobs"] = [np.log([0.5, 0.5])] * len(dev)
    dev.loc[dev["lr"] == 1e-3, "label_logprobs"] = pd.Series([np.log([0.9, 0.1]), np.log([0.1, 0.9])] * 2,
                                                             index=dev.index[dev["lr"] == 1e-3])
    return shen_claims.paired_icl_gd(pd.concat(icl), pd.concat(ft), dev)


def test_pairing_uses_the_dev_selected_lr_and_skips_zero_shot(paired):
    assert len(paired) == 40 and set(paired["k"]) == {2} and set(paired["seed"]) == {0, 1}
    for seed in (0, 1):
        got = paired.loc[paired["seed"] == seed, "correct_gd"].tolist()
        assert got == [int(p == y) for p, y in zip(GD_GOOD[seed], LABELS)]
    assert paired["variant"].unique().tolist() == ["gd/all"]


def test_pairing_refuses_disjoint_records():
    icl = records("icl", [0], [0])
    ft = records("finetune", [0], [0], lr=1e-3, optimizer="gd", subset="all", epoch=1, uids=[99])
    dev = ft.assign(label_logprobs=[np.zeros(2)])
    with pytest.raises(ValueError, match="share the keys"):
        shen_claims.paired_icl_gd(icl, ft, dev)


def hand_crossed_p() -> tuple[float, float, float]:
    """(effect, se, p) of the crossed t for the fixture, by hand. ICL - GD per (seed, example): seed 0 has 7
    ones, seed 1 five, the rest 0; mean 12/40 = 0.3, influence (y - 0.3) / 40.
    Sets: sums (7 - 6)/40 = 0.025 and (5 - 6)/40 = -0.025 -> V_set = 2/1 * 2 * 0.025^2 = 0.0025.
    Examples: 13 with both 0 (-0.6/40), 2 with (1, 0) (0.4/40), 5 with both 1 (1.4/40)
      -> V_ex = 20/19 * (13 * 0.015^2 + 2 * 0.01^2 + 5 * 0.035^2) = 20/19 * 0.00925.
    Cells: 28 zeros (0.09) and 12 ones (0.49): V_both = 40/39 * 8.4 / 1600 = 0.0053846 > V_set, so the set level
    is dropped and the test is the example level alone: variance V_ex, df 19."""
    se = math.sqrt(20 / 19 * 0.00925)
    return 0.3, se, float(2 * sps.t.sf(0.3 / se, 19))


def test_icl_vs_gd_tests_are_crossed_t_tests_with_power_for_a_gap(paired):
    tests = shen_claims.icl_vs_gd_tests(paired, alpha=0.05)
    assert sorted(tests["family"]) == ["shen_icl_vs_gd_full_vocab", "shen_icl_vs_gd_label"]
    row = tests[tests["family"] == "shen_icl_vs_gd_label"].iloc[0]
    effect, se, p = hand_crossed_p()
    assert row["test"] == "crossed-t" and row["unit"] == "sets x examples"
    assert (row["n"], row["n_sets"], row["n_examples"]) == (2, 2, 20)
    assert row["effect"] == pytest.approx(effect) and row["se"] == pytest.approx(se)
    assert row["df"] == pytest.approx(19) and row["p"] == pytest.approx(p)
    assert row["p_holm"] == pytest.approx(row["p"])  # a family of one
    # power for a 20-point gap at alpha / 1: noncentral t with df 19 and the fitted SE
    crit, nc = sps.t.ppf(0.975, 19), 0.2 / se
    assert row["power_gap"] == pytest.approx(sps.nct.sf(crit, 19, nc) + sps.nct.cdf(-crit, 19, nc))
    assert "plan" not in tests
    macros = shen_claims.setting_macros(tests, 0.05)
    assert macros["ShenIclVsGdLabelN"] == "1" and macros["ShenIclVsGdLabelSig"] == "1"
    assert macros["ShenIclVsGdLabelIclBetter"] == "1" and macros["ShenIclVsGdLabelGdBetter"] == "0"
    assert macros["ShenIclVsGdLabelPowerTwenty"] == f"{100 * row['power_gap']:.0f}"


def test_shen_claims_pool_over_settings(paired):
    rows = shen_claims.shen_claims(paired, 0.05, seed=0).set_index("family")
    assert list(rows.index) == ["shen_pooled", "shen_pooled_full_vocab"]  # one setting: no inconsistency row
    effect, se, p = hand_crossed_p()
    assert rows.loc["shen_pooled", "effect"] == pytest.approx(effect)
    assert rows.loc["shen_pooled", "p"] == pytest.approx(p)
    assert rows.loc["shen_pooled", "plan"]["test"] == "crossed-t" and rows.loc["shen_pooled", "plan"]["n"] == 2
    # a second k with no gap at all: the pooled effect averages the two settings, and the gaps' SD is tested
    other = paired.assign(k=4, correct_gd=paired["correct_icl"], full_gd=paired["full_icl"])
    two = shen_claims.shen_claims(pd.concat([paired, other], ignore_index=True), 0.05, seed=0).set_index("family")
    assert two.loc["shen_pooled", "effect"] == pytest.approx((0.3 + 0.0) / 2)
    assert two.loc["shen_inconsistency", "test"] == "welch-F"
    assert two.loc["shen_inconsistency", "effect"] == pytest.approx(0.15)  # SD (ddof 0) of 0.3 and 0


def test_no_learned_gd_run_leaves_shen_claims_untested(paired):
    """Nothing to pair (no fine-tuned run learned its demonstrations): empty tests, the pooled claim has n = 0."""
    none = paired.iloc[:0]
    assert shen_claims.icl_vs_gd_tests(none, alpha=0.05).empty
    rows = shen_claims.shen_claims(none, 0.05, seed=0)
    assert rows["family"].tolist() == ["shen_pooled"] and rows["n"].tolist() == [0] and rows["p"].isna().all()
    table = claims.claims_table([rows], [construction()], CFG)
    assert table["verdict"].iloc[0] == "not tested"


def test_setting_macros_read_zero_of_zero_without_tests(paired):
    macros = shen_claims.setting_macros(shen_claims.icl_vs_gd_tests(paired.iloc[:0], alpha=0.05), 0.05)
    assert macros["ShenIclVsGdFullVocabN"] == "0" and macros["ShenIclVsGdLabelSig"] == "0"  # main.tex uses them
    assert macros["ShenIclVsGdLabelPowerTwenty"] == "--"


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
    out = shen_claims.permutation_claims(pd.DataFrame(rows), alpha=0.05)
    assert len(out) == 1 and out["family"].iloc[0] == "shen_permuted"
    assert (out["n_sets"].iloc[0], out["n_examples"].iloc[0], out["n"].iloc[0]) == (3, 30, 3)
    assert out["n_obs"].iloc[0] == 90  # one gap per (set, example), not one per permuted order
    assert out["effect"].iloc[0] == pytest.approx(0.3, abs=0.03) and out["p"].iloc[0] < 1e-3
    assert out["effect_lo"].iloc[0] > 0.2


# --------------------------------------------------------------------------- Kossen et al.


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


# --------------------------------------------------------------------------- Han et al.


def han_summary(head_only: int, const_only: int, both: int, neither: int, dataset: str = "d") -> pd.DataFrame:
    """A kernel summary row from eval_agreement_stats: the constant vote is class 0 (the selection part's
    majority), ICL predicts 0 where the constant agrees."""
    agree = [True] * head_only + [False] * const_only + [True] * both + [False] * neither
    pred_ev = [1] * head_only + [0] * const_only + [0] * both + [1] * neither
    st = summaries.eval_agreement_stats(np.array(agree), np.array(pred_ev), np.array([0, 0, 1]), seed=0, n_boot=200,
                                        ci=0.95)
    return pd.DataFrame([{"model": "m", "dataset": dataset, "n_eval": len(agree),
                          "eval_agreement": float(np.mean(agree)), **st}])


def test_eval_agreement_stats_is_the_one_sided_exact_mcnemar():
    # 18 head-only, 0 const-only, 50 both, 32 neither: p = P(Bin(18, 1/2) >= 18) = 2^-18
    st = han_summary(18, 0, 50, 32).iloc[0]
    assert (st["eval_head_only"], st["eval_const_only"]) == (18, 0)
    assert st["eval_agreement_p"] == pytest.approx(2.0**-18)
    assert st["eval_const_agreement"] == pytest.approx(0.5) and st["eval_diff"] == pytest.approx(0.18)
    se = math.sqrt(0.18 * 0.82 * 100 / 99 / 100)  # per-query differences: 18 ones, 82 zeros
    assert st["eval_diff_se"] == pytest.approx(se)
    assert st["eval_diff_hi"] == pytest.approx(0.18 + sps.t.ppf(0.975, 99) * se)
    assert st["eval_diff_tost_lo"] == pytest.approx(0.18 - sps.t.ppf(0.95, 99) * se)


def test_kernel_claims_rows_carry_the_mcnemar_plan():
    row = kernel_claims.kernel_claims(han_summary(18, 2, 48, 32)).iloc[0]
    assert (row["family"], row["test"], row["unit"], row["n"], row["expected_sign"]) == (
        "han_kernel", "mcnemar-exact", "held-out queries", 100, 1)
    assert row["effect"] == pytest.approx(0.16) and row["baseline"] == pytest.approx(0.5)
    assert row["plan"]["discordant"] == pytest.approx(0.2) and row["plan"]["n"] == 100
    assert row["p"] == pytest.approx(sps.binom.sf(17, 20, 0.5))  # P(Bin(20, 1/2) >= 18)
    assert kernel_claims.kernel_claims(pd.DataFrame()).empty


# --------------------------------------------------------------------------- the claims table


CFG = {"alpha": 0.05, "power": 0.8, "references": {
    "shen_pooled": {"sesoi": 0.05, "why": "declared, Cohen's f^2 ~ small"},
    "kossen_x": {"seed": 0.3, "source": "Fig. 1"},
    "kossen_x_control": {"sesoi": 0.1, "why": "a third of the seed's contrast"},
    "han_kernel": {"seed": 0.8, "level": True, "seed_baseline": [0.5, 0.6], "source": "Table 2"},
}}

SHEN_PARTS = crossed.Parts(set=0.001, example=0.0005, residual=0.0002, df_set=4, df_example=39, df_both=156)


def shen_row(**over) -> dict:
    var, df = SHEN_PARTS.variance()
    return {"paper": "Shen et al.", "family": "shen_pooled", "claim": "ICL and GD differ", "model": "all",
            "dataset": "all", "expected_sign": 0, "effect": -0.1, "effect_lo": -0.2, "effect_hi": -0.05,
            "tost_lo": -0.18, "tost_hi": -0.06, "p": 0.001, "se": math.sqrt(var), "df": df, "n": 5, "n_sets": 5,
            "n_examples": 40, "test": "crossed-t", "unit": "sets x examples", "evidence": "", "target": "claims",
            "plan": {"test": "crossed-t", "parts": SHEN_PARTS, "n": 5.0, "max_effect": 0.3}} | over


def kossen_row(dataset: str, effect: float, lo: float, hi: float, p: float, se: float, n: int, **over) -> dict:
    sd = se * math.sqrt(n)
    return {"paper": "Kossen et al.", "family": "kossen_x", "claim": "c", "model": "m", "dataset": dataset,
            "expected_sign": +1, "effect": effect, "effect_lo": lo, "effect_hi": hi, "tost_lo": lo, "tost_hi": hi,
            "p": p, "se": se, "df": n - 1.0, "n": n, "n_contexts": n, "evidence": "", "target": "t", "test": "t",
            "unit": "contexts", "plan": {"test": "t", "n": n, "sd": sd, "se": se, "df": n - 1.0, "max_effect": 2 * sd}
            } | over


def construction() -> pd.DataFrame:
    return construction_claims.construction_claims(
        {"final_pred_cosine": 0.9995, "order_std_constructed": 1e-16},
        pd.DataFrame({"proj": ["q_proj", "k_proj"], "threshold": [1e-3, 1e-3], "measured": [0.01, 0.02],
                      "constructed": [0.9999, 0.9999]}), 1e-3)


def full_table() -> pd.DataFrame:
    controls = pd.DataFrame([
        kossen_row("novel", 0.01, -0.03, 0.05, 0.6, 0.02, 20, family="kossen_x_control", expected_sign=0,
                   negative_control=True),  # inside the margin 0.1: t = -4.5 at the upper side
        kossen_row("novel2", 0.3, 0.2, 0.4, 1e-4, 0.05, 20, family="kossen_x_control", expected_sign=0,
                   negative_control=True),  # clearly nonzero: the control failed
    ])
    kossen = pd.DataFrame([
        kossen_row("a", 0.5, 0.35, 0.65, 0.001, 0.07, 20),  # far bound 0.65 reaches 0.3
        kossen_row("b", 0.15, 0.1, 0.2, 0.001, 0.025, 20),  # decided, far bound 0.2 < 0.3
        kossen_row("c", -0.2, -0.3, -0.1, 0.002, 0.05, 20),  # decided on the other side
        kossen_row("d", 0.0, -0.05, 0.05, 0.9, 0.025, 20),  # non-superiority t = -12: absent
        kossen_row("e", 0.1, -0.5, 0.7, 0.7, 0.3, 10),  # non-superiority t = -0.67: inconclusive
        kossen_row("f", np.nan, np.nan, np.nan, np.nan, np.nan, 10),  # no test
    ])
    # 18 head-only, 0 const-only over a 0.5 baseline: far bound 0.18 + 1.98 x 0.0386 = 0.257, between the
    # reference range's ends 0.25 (kappa 0.5 x 0.5) and 0.3 (kappa 0.6 x 0.5)
    kernel = kernel_claims.kernel_claims(han_summary(18, 0, 50, 32))
    return claims.claims_table([controls, pd.DataFrame([shen_row()]), kossen, kernel], [construction()], CFG)


def test_claims_table_gives_every_verdict():
    table = full_table()
    assert table["verdict"].tolist() == [
        "reproduced",  # shen_pooled: undirected, far bound 0.2 >= 0.05
        "reproduced", "reproduced, smaller than the reference", "contradicted", "absent", "inconclusive",
        "not tested",
        "reproduced",  # han: the two ends of its reference range disagree, both say "reproduced"
        "reproduced", "reproduced", "reproduced",  # construction
        "null, as expected", "control failed",  # negative controls, after every claim
    ]
    assert table["block"].tolist() == ["claim"] * 11 + ["negative control"] * 2
    assert set(table.loc[table["block"] == "claim", "verdict"]) <= set(stats.VERDICTS)
    assert set(table.loc[table["block"] == "negative control", "verdict"]) <= set(stats.CONTROL_VERDICTS)
    assert table["criterion"].tolist()[:8] == ["two-sided"] + ["> 0"] * 7
    assert table["criterion"].tolist()[-2:] == ["= 0 (control)"] * 2
    assert table.loc[table["family"] == "construction", "test"].eq("exact").all()


def test_claims_table_holm_and_equivalence_within_each_family():
    table = full_table()
    kx = table[table["family"] == "kossen_x"]
    # 5 tested rows: sorted p 0.001, 0.001, 0.002, 0.7, 0.9 x 5, 4, 3, 2, 1 -> 0.005, 0.004 -> 0.005, 0.006, 1, 1
    np.testing.assert_allclose(kx["p_holm"].to_numpy(), [0.005, 0.005, 0.006, 1.0, 1.0, np.nan])
    # the equivalence p of row d: non-superiority against 0.3, t = (0 - 0.3) / 0.025 = -12, times 5 rows
    d = kx[kx["dataset"] == "d"].iloc[0]
    assert d["p_tost"] == pytest.approx(sps.t.cdf(-12, 19))
    e = kx[kx["dataset"] == "e"].iloc[0]
    assert e["p_tost"] == pytest.approx(sps.t.cdf((0.1 - 0.3) / 0.3, 9))
    assert e["p_tost_holm"] >= e["p_tost"] > 0.05
    ctrl = table[table["dataset"] == "novel"].iloc[0]
    # a control's equivalence test is two-sided TOST against the margin 0.1: the larger p is the upper side
    assert ctrl["p_tost"] == pytest.approx(sps.t.cdf((0.01 - 0.1) / 0.02, 19))
    assert ctrl["p_holm"] == pytest.approx(0.6)  # family of two controls: sorted 1e-4 x 2, 0.6 x 1
    assert table.loc[table["dataset"] == "novel2", "p_holm"].iloc[0] == pytest.approx(2e-4)


def test_claims_table_power_columns_are_for_the_rows_own_test():
    table = full_table()
    kx = table[table["family"] == "kossen_x"]
    assert kx["alpha_plan"].tolist() == pytest.approx([0.01] * 6)  # 0.05 / 5 tested rows, not by Holm rank
    e = kx[kx["dataset"] == "e"].iloc[0]
    sd = 0.3 * math.sqrt(10)
    assert TTestPower().power(effect_size=e["mde"] / sd, nobs=10, alpha=0.01) == pytest.approx(0.8, abs=1e-6)
    assert e["power_at_ref"] == pytest.approx(TTestPower().power(effect_size=0.3 / sd, nobs=10, alpha=0.01))
    n = e["n_needed"]
    assert TTestPower().power(effect_size=0.3 / sd, nobs=n, alpha=0.01) >= 0.8
    assert TTestPower().power(effect_size=0.3 / sd, nobs=n - 1, alpha=0.01) < 0.8
    assert e["n_decide"] == power.n_to_decide(full_plan(e), 0.1, 0.3, 0.01)
    f = kx[kx["dataset"] == "f"].iloc[0]
    assert np.isnan(f["mde"]) and np.isnan(f["n_needed"]) and np.isnan(f["n_decide"])
    assert (e["reference"], e["reference_kind"], e["reference_source"]) == (0.3, "seed", "Fig. 1")
    assert np.isnan(e["reference_hi"]) and e["seed_effect"] == 0.3
    shen = table[table["family"] == "shen_pooled"].iloc[0]
    assert shen["reference_kind"] == "SESOI" and shen["reference"] == 0.05 and np.isnan(shen["seed_effect"])
    assert shen["alpha_plan"] == pytest.approx(0.05)
    assert shen["power_at_ref"] == pytest.approx(crossed.power(0.05, SHEN_PARTS, 0.05))
    assert shen["mde"] == pytest.approx(power.mde(shen_row()["plan"], 0.05), rel=1e-6)
    assert crossed.power(shen["mde"], SHEN_PARTS, 0.05) == pytest.approx(0.8, abs=1e-6)
    controls = table[table["block"] == "negative control"]
    assert controls["n_needed"].isna().all()  # nothing to detect in a control


def full_plan(row) -> dict:
    sd = 0.3 * math.sqrt(10)
    return {"test": "t", "n": 10, "sd": sd, "se": 0.3, "df": 9.0, "max_effect": 2 * sd}


def test_han_reference_range_notes_which_end_decides():
    table = full_table()
    han = table[table["family"] == "han_kernel"].iloc[0]
    # kappa = (0.8 - 0.5) / 0.5 = 0.6 and (0.8 - 0.6) / 0.4 = 0.5, over the row's 1 - 0.5 room: 0.3 and 0.25
    assert han["reference"] == pytest.approx(0.3) and han["reference_hi"] == pytest.approx(0.25)
    assert han["seed_effect"] == pytest.approx(0.8)
    assert 0.25 < han["effect_hi"] < 0.3
    assert han["verdict"] == "reproduced"
    assert han["verdict_note"] == ("reproduced, smaller than the reference at ref. 0.300; reproduced at ref. 0.250")
    assert table.loc[table["family"] == "kossen_x", "verdict_note"].eq("").all()


def test_han_reference_range_with_conflicting_ends_is_inconclusive():
    # 9 head-only, 5 const-only, 15 both, 11 neither (n = 40, baseline 0.5 -> references 0.3 and 0.25):
    # p = P(Bin(14, 1/2) >= 9) = 0.212, not significant. Differences: 9 ones, 5 minus ones -> mean 0.1,
    # variance (14 - 40 x 0.01) / 39, se = sqrt(13.6 / 39 / 40) = 0.0934; non-superiority t = -2.14 against 0.3
    # (p 0.019: absent) but -1.61 against 0.25 (p 0.058: inconclusive)
    kernel = kernel_claims.kernel_claims(han_summary(9, 5, 15, 11))
    row = claims.claims_table([kernel], [construction()], CFG).iloc[0]
    se = math.sqrt(13.6 / 39 / 40)
    assert row["p"] == pytest.approx(sum(math.comb(14, j) for j in range(9, 15)) / 2**14)
    assert row["p_tost"] == pytest.approx(sps.t.cdf((0.1 - 0.3) / se, 39))
    assert row["p_tost"] < 0.05 < sps.t.cdf((0.1 - 0.25) / se, 39)
    assert row["verdict"] == "inconclusive"  # a verdict must hold across the range
    assert row["verdict_note"] == "absent at ref. 0.300; inconclusive at ref. 0.250"


def test_kernel_reference_carries_the_seeds_kappa_to_the_rows_baseline():
    kernel = kernel_claims.kernel_claims(pd.concat([han_summary(18, 0, 70, 12, "a"), han_summary(0, 0, 100, 0, "b")],
                                                   ignore_index=True))
    table = claims.claims_table([kernel], [construction()], CFG)
    # over a 0.7 baseline: kappa 0.6 x 0.3 = 0.18 and 0.5 x 0.3 = 0.15
    assert table["reference"].iloc[0] == pytest.approx(0.18) and table["reference_hi"].iloc[0] == pytest.approx(0.15)
    # ICL constant on the held-out part (baseline 1): no room above it, no reference, nothing can be called absent
    assert np.isnan(table["reference"].iloc[1]) and table["verdict"].iloc[1] == "inconclusive"


def test_a_decided_test_on_the_wrong_side_is_contradicted():
    table = claims.claims_table([pd.DataFrame([kossen_row("a", -0.3, -0.32, -0.28, 1e-4, 0.01, 20)])],
                                [construction()], CFG)
    assert table["verdict"].iloc[0] == "contradicted"


def test_claims_table_names_a_family_without_a_reference():
    with pytest.raises(ValueError, match="claims.references has no entry for claim family 'shen_new'"):
        claims.claims_table([pd.DataFrame([shen_row(family="shen_new")])], [construction()], CFG)


def test_a_level_reference_needs_the_seeds_baseline():
    refs = {**CFG["references"], "han_kernel": {"seed": 0.8, "level": True, "source": "Table 2"}}
    kernel = kernel_claims.kernel_claims(han_summary(18, 0, 50, 32))
    with pytest.raises(ValueError, match="claims.references.han_kernel: level: true needs seed_baseline"):
        claims.claims_table([kernel], [construction()], CFG | {"references": refs})


def test_construction_claims_fail_when_the_criterion_fails():
    sparsity = pd.DataFrame({"proj": ["q_proj"], "threshold": [1e-3], "measured": [0.9], "constructed": [0.99]})
    table = construction_claims.construction_claims({"final_pred_cosine": 0.5, "order_std_constructed": 1e-3}, sparsity, 1e-3)
    assert table["verdict"].tolist() == ["not reproduced"] * 3
    ok = construction()
    assert ok["verdict"].tolist() == ["reproduced"] * 3


# --------------------------------------------------------------------------- sizing


SIZING_CFG = {"data": {"n_test": 20}, "labels": {"repetitions": 10}, "kernel": {"n_queries": None, "n_train_queries": 10},
              "icl": {"demo_seeds": [0, 1, 2]}}
#: each family's knob, as rule claims takes it from the family's study
KNOBS = {"shen_pooled": finetune_study.STUDY.knob, "kossen_x": labels_study.STUDY.knob,
         "han_kernel": kernel_study.STUDY.knob}


def test_sizing_turns_units_needed_into_the_config_value_that_sets_them():
    table = full_table()
    out = claims.sizing(table, SIZING_CFG | {"references": CFG["references"]}, KNOBS)
    assert set(out["family"]) == {"shen_pooled", "kossen_x", "han_kernel"}  # no construction, no controls
    by = out.set_index(["family", "dataset"])
    shen = by.loc[("shen_pooled", "all")]
    assert (shen["config_key"], shen["current"]) == ("icl.demo_seeds (count)", 3)
    # more sets cannot shrink the example part (0.0005): at the SESOI 0.05 its power stays below 0.8 -> inf
    assert crossed.power(0.05, SHEN_PARTS, 0.05, set_scale=1e6) < 0.8
    assert shen["n_needed"] == math.inf and shen["needed"] == math.inf
    kossen = by.loc[("kossen_x", "e")]
    assert (kossen["config_key"], kossen["current"]) == ("labels.repetitions", 10)
    assert kossen["needed"] == kossen["n_needed"] > 10  # one context per repetition
    assert np.isnan(by.loc[("kossen_x", "f"), "needed"])  # not tested: no N
    # 100 held-out queries out of 20 test + 10 extra: 100 / 30 held out per query; minus the 20 test queries
    han = by.loc[("han_kernel", "d")]
    assert han["config_key"] == "kernel.n_train_queries" and han["current"] == 10
    assert han["needed"] == max(0, math.ceil(han["n_needed"] / (100 / 30) - 20 - 1e-9))
    # targets: seed-quantified rows (the SESOI row is not one)
    assert not shen["target"] and kossen["target"] and han["target"]
    refs = {**CFG["references"], "kossen_x": {**CFG["references"]["kossen_x"], "datasets": ["sst2"]}}
    summary = claims.sizing_summary(claims.sizing(table, SIZING_CFG | {"references": refs}, KNOBS)).set_index("config_key")
    assert summary.loc["labels.repetitions", "target_rows"] == 0  # kossen_x's rows are not on SST-2
    assert summary.loc["kernel.n_train_queries", "needed"] == han["needed"]
    assert summary.loc["icl.demo_seeds (count)", "target_rows"] == 0
    assert np.isnan(summary.loc["icl.demo_seeds (count)", "needed"])


# --------------------------------------------------------------------------- LaTeX


def test_claims_tex_and_macros():
    table = full_table()
    tex = claims_tex.claims_tex(table)
    assert "tab:claims" in tex and "$$" not in tex and "\\ref{fig:lsa}" not in tex
    assert "$|w| < 0.001$" in tex  # no nested math
    # only the deterministic rows are "exact" (units and p)
    assert sum(line.startswith("-- & exact & ") for line in tex.splitlines()) == 3
    assert tex.count("Kossen: c [$>$ 0]") == 1  # a family's claim text is shown once
    assert tex.count("Kossen: c [= 0 (control)]") == 1  # ... and the controls' in their own block
    assert tex.index("Negative controls") > tex.index("Shen: ICL and GD differ")
    assert tex.count("Negative controls") == 1
    assert "$^\\dagger$" in tex  # the SESOI reference is marked
    assert "0.250--0.300" in tex  # Han's reference range
    assert "5 sets $\\times$ 40 ex." in tex and "20 contexts" in tex and "100 queries" in tex
    assert "$^\\ast$" in tex  # the inconclusive row's N to decide
    macros = claims_tex.claims_macros(table)
    assert macros["ClaimsN"] == "11" and macros["ClaimsTested"] == "8" and macros["ClaimsDecided"] == "6"
    assert macros["ClaimsReproduced"] == "6"  # shen, kossen a, han, construction x 3
    assert macros["ClaimsReproducedSmallerThanTheReference"] == "1"
    assert macros["ClaimsContradicted"] == "1" and macros["ClaimsAbsent"] == "1"
    assert macros["ClaimsInconclusive"] == "1" and macros["ClaimsNotTested"] == "1"
    assert macros["ClaimsControls"] == "2"
    assert macros["ControlsNullAsExpected"] == "1" and macros["ControlsControlFailed"] == "1"
    assert macros["ClaimKossenXMDVerdict"] == "absent" and macros["ClaimKossenXMEVerdict"] == "inconclusive"
    assert macros["ClaimKossenXControlMNovelVerdict"] == "null, as expected"
    headline = claims_tex.headline_tex(table)
    assert "\\emph{control}: " in headline and "1 null, as expected; 1 control failed" in headline
    refs = claims_tex.references_tex(table)
    assert "Table 2" in refs and "declared" in refs
    assert "f\\textasciicircum{}2 \\textasciitilde{} small" in refs  # free config text cannot break the build

"""The seed papers' headline claims as tested statements: paired tests, Holm families, power, verdicts.

Every comparison is paired (same test examples, same random contexts), so the tests are paired too:

* ``shen_icl_vs_gd`` (family per accuracy metric): McNemar of ICL vs the fine-tuned model (dev-selected
  lr among converged runs) on the same test examples, one test per (model, dataset, k, GD variant);
* ``shen_inconsistency``: Shen et al.'s "the trends are inconsistent across datasets and N" as the
  interaction terms method x dataset / model / k of a type-II ANOVA of per-example correctness (effect:
  the strongest term's partial Cohen's f^2);
* ``shen_pooled``: the pooled ICL-GD accuracy gap, a GEE that clusters the repeated measurements of
  each test example (it appears once per k) instead of pooling them as independent draws;
* ``shen_permuted``: "ICL agrees more with its own permuted-order version than with GD": per model, the
  top-10 overlap of ICL with ICL reordered minus with GD, averaged within each test example (over N, seeds
  and variants) so examples are the independent units, one-sample Wilcoxon over examples;
* ``kossen_<claim>_<metric>_<contrast>`` (one family per headline contrast, over models and datasets):
  one-sample Wilcoxon over random contexts of each per-context gap of Kossen et
  al. (default - random, flipped late - first, default - flipped, D->F - F->D);
* ``han_kernel``: the best head's held-out agreement with ICL above a constant vote (exact binomial);
* ``construction``: exact computations (no sampling error), checked against a stated criterion.

Holm runs within each family. Every tested row then gets its power (`iclgd.core.power`): the minimum
detectable effect of its own test at its N and Holm level, the reference effect (the seed's, or a declared
SESOI; config `claims.references`) and the N that would detect it; `stats.verdict` turns p, CI, MDE and
reference into reproduced / contradicted / absent at adequate power / underpowered.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterable

import numpy as np
import pandas as pd

from iclgd.icl_vs_gd import compare_report, finetune_report
from iclgd.label_relationships import curves
from iclgd.core import power, stats
from iclgd.core.paper import booktabs_table, fmt, latex_escape, latex_text, macro_name, sci

log = logging.getLogger(__name__)
ALPHA = 0.05
PAIR_KEYS = ["model", "dataset", "k", "seed", "uid"]
#: A ragged-right paragraph column (needs the array package): justified narrow cells leave holes.
RAGGED = ">{{\\raggedright\\arraybackslash}}p{{{}cm}}"

#: Kossen et al. headline contrasts: (claim, contrast, metric, condition or None, expected sign, text).
KOSSEN = [
    ("labels_matter", "default - random", "loglik", None, +1,
     "Predictions depend on the in-context labels: log-lik.\\ of the true label, default $-$ random labels"),
    ("flip_learned", "last - position 1", "agree_presented", "flipped", +1,
     "Flipped labels are learned: agreement with flipped labels, late $-$ first position"),
    ("flip_learned", "default correct - flipped", "agree_presented", "flipped", +1,
     "Pretraining preference not fully overcome: default accuracy $-$ flipped agreement (late)"),
    ("recency", "D->F - F->D", "correct", "default_to_flipped", -1,
     "Recency: at equal label counts, agreement with the default labels D$\\to$F $-$ F$\\to$D"),
]


# --------------------------------------------------------------------------- ICL vs GD (Shen et al.)


def paired_icl_gd(icl: pd.DataFrame, ft: pd.DataFrame, ft_dev: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, dataset, k, seed, uid, GD variant): ICL's and the fine-tuned model's correctness.

    The fine-tuned side is the dev-selected lr among the runs that learned their demonstrations, as in
    the accuracy table; settings where no lr converged are not compared.
    """
    chosen = finetune_report.selected_records(ft, ft_dev)
    chosen = chosen.assign(variant=chosen["optimizer"] + "/" + chosen["subset"])
    side = lambda frame: frame.assign(  # noqa: E731 - a two-column projection
        correct=(frame["pred_index"] == frame["label_index"]).astype(int),
        full=frame["full_correct"].astype(int),
    )
    left = side(icl[(icl["method"] == "icl") & (icl["k"] > 0)])[PAIR_KEYS + ["correct", "full"]]
    right = side(chosen)[PAIR_KEYS + ["variant", "correct", "full"]]
    paired = left.merge(right, on=PAIR_KEYS, suffixes=("_icl", "_gd"), validate="one_to_many")
    if paired.empty:
        raise ValueError(f"no ICL and fine-tuning records share the keys {PAIR_KEYS}")
    return paired.sort_values(PAIR_KEYS + ["variant"], ignore_index=True)


def icl_vs_gd_tests(paired: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """McNemar of ICL vs GD per (model, dataset, k, variant), for label-restricted and full-vocab accuracy.

    effect = acc(ICL) - acc(GD), a fraction; Holm within each metric's family.
    """
    rows = []
    for key, group in paired.groupby(["model", "dataset", "k", "variant"], sort=True):
        for metric in ("correct", "full"):
            test = stats.mcnemar(group[f"{metric}_icl"], group[f"{metric}_gd"], n_boot=n_boot, seed=seed)
            family = "shen_icl_vs_gd_" + ("label" if metric == "correct" else "full_vocab")
            rows.append({**dict(zip(["model", "dataset", "k", "variant"], key)), "family": family, **test})
    out = pd.DataFrame(rows)
    out["p_holm"] = out.groupby("family")["p"].transform(lambda p: stats.holm(p.to_numpy()))
    return out


def long_format(paired: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """ICL and GD rows stacked (method column) for models of the method effect and its interactions."""
    common = PAIR_KEYS + ["variant"]
    icl = paired[common].assign(method="icl", outcome=paired[f"{metric}_icl"])
    gd = paired[common].assign(method="gd", outcome=paired[f"{metric}_gd"])
    out = pd.concat([icl, gd], ignore_index=True)
    out["is_gd"] = (out["method"] == "gd").astype(int)
    out["cluster"] = out["model"] + "|" + out["dataset"] + "|" + out["uid"].astype(str)
    out["k"] = out["k"].astype(str)
    return out


def inconsistency_anova(paired: pd.DataFrame, metric: str = "correct") -> pd.DataFrame:
    """Type-II ANOVA of correctness on method x (dataset + model + k); Holm over the interaction terms."""
    table = stats.interaction_anova(long_format(paired, metric), "outcome", ["dataset", "model", "k"])
    interactions = table["term"].str.startswith("method:")
    table["p_holm"] = np.nan
    table.loc[interactions, "p_holm"] = stats.holm(table.loc[interactions, "p"].to_numpy())
    table["dropped"] = ", ".join(table.attrs.get("dropped", [])) or ""
    return table


def pooled_gap(paired: pd.DataFrame, metric: str = "correct", n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """ICL - GD accuracy over all settings: GEE p-value (clusters = test examples), bootstrap CI of the gap."""
    try:
        gee = stats.gee_effect(long_format(paired, metric), "outcome", "is_gd", "cluster", covariates=["dataset", "model", "k"])
    except ValueError as err:  # e.g. a constant outcome: no test is possible, say so instead of guessing
        log.warning("pooled ICL-GD GEE not fitted: %s", err)
        gee = {"p": np.nan, "effect": np.nan, "n_groups": 0}
    # Resample test examples (clusters), not rows: each example appears once per k and variant.
    diff = (paired[f"{metric}_icl"] - paired[f"{metric}_gd"]).groupby(
        [paired["model"], paired["dataset"], paired["uid"]]).mean()
    effect, lo, hi = stats.bootstrap_ci(diff.to_numpy(), n_boot, 0.95, seed)
    return {"effect": effect, "effect_lo": lo, "effect_hi": hi, "p": gee["p"], "gee_log_odds_gd": gee["effect"],
            "n": int(len(diff)), "n_rows": int(len(paired)), "n_groups": gee["n_groups"],
            "sd": float(diff.std(ddof=1)) if len(diff) > 1 else np.nan}


# --------------------------------------------------------------------------- Kossen et al.


def kossen_family(claim: str, metric: str, contrast: str) -> str:
    """One Holm family per headline contrast: two contrasts of one claim key are different hypotheses."""
    return f"kossen_{claim}_{metric}_{re.sub(r'[^a-z0-9]+', '_', contrast.lower()).strip('_')}"


def kossen_tests(table: pd.DataFrame, cfg: dict[str, Any] | None = None, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One-sample Wilcoxon (vs 0) over random contexts of each headline gap, per (model, dataset)."""
    samples = curves.claim_samples(table, cfg, n_boot=n_boot, seed=seed)
    rows = []
    for claim, contrast, metric, condition, sign, text in KOSSEN:
        sel = (samples["claim"] == claim) & (samples["contrast"] == contrast) & (samples["metric"] == metric)
        if condition is not None:
            sel &= samples["condition"] == condition
        for _, row in samples[sel].iterrows():
            values = np.asarray(row["samples"], dtype=float)
            test = stats.wilcoxon(values, np.zeros_like(values), n_boot=n_boot, seed=seed)
            rows.append({"paper": "Kossen et al.", "family": kossen_family(claim, metric, contrast), "claim": text,
                         "model": row["model"], "dataset": row["dataset"], "expected_sign": sign,
                         "evidence": "Fig.~\\ref{fig:curves}, Tab.~\\ref{tab:label_claims}",
                         "target": "label_paper_numbers", "test": "wilcoxon", "unit": "contexts", "samples": values,
                         **{k: test[k] for k in ("effect", "effect_lo", "effect_hi", "p", "n")}})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- exact (construction) claims


def construction_claims(headline: dict[str, float], sparsity: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Deterministic claims: a stated criterion on an exact computation (no p-value, no CI)."""
    at = sparsity[np.isclose(sparsity["threshold"], threshold)]
    qk = at[at["proj"].isin(["q_proj", "k_proj"])]
    gap = float((qk["constructed"] - qk["measured"]).min()) if len(qk) else np.nan
    rows = [
        ("Trained on the ICL objective, linear self-attention implements one GD step: prediction cosine",
         headline["final_pred_cosine"], headline["final_pred_cosine"] > 0.99, "> 0.99", "lsa_study"),
        ("Full-batch GD (and the construction) is order-invariant: std over orderings",
         headline["order_std_constructed"], headline["order_std_constructed"] < 1e-12, "< 1e-12", "lsa_study"),
        (f"Constructed $W_Q, W_K$ are far sparser than real ones: smallest gap in fraction $|w| < {threshold:g}$",
         gap, bool(gap > 0.5), "> 0.5", "construction_paper_numbers"),
    ]
    return pd.DataFrame(
        [{"paper": "Shen et al.", "family": "construction", "claim": text, "model": "", "dataset": "",
          "effect": value, "effect_lo": np.nan, "effect_hi": np.nan, "p": np.nan, "n": np.nan, "expected_sign": 1,
          "criterion": crit, "verdict": "reproduced" if ok else "not reproduced", "target": target,
          "evidence": "Fig.~\\ref{fig:lsa}, Tab.~\\ref{tab:sparsity}"}
         for text, value, ok, crit, target in rows]
    )


# --------------------------------------------------------------------------- the claims table


def shen_claims(paired: pd.DataFrame, anova: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Shen et al.'s accuracy claims: ICL and GD differ, inconsistently across datasets / models / N."""
    pooled = pooled_gap(paired, "full", n_boot, seed)
    inter = anova[anova["term"].str.startswith("method:")]
    best = inter.sort_values("p_holm").iloc[0] if len(inter) else None
    resid = anova[anova["term"] == "Residual"]
    df_denom = float(resid["df"].iloc[0]) if len(resid) else np.nan
    n_obs = df_denom + float(anova.loc[anova["term"] != "Residual", "df"].sum()) + 1  # + intercept
    rows = [{
        "paper": "Shen et al.", "family": "shen_pooled", "claim": "ICL and GD on the same demonstrations differ "
        "(full-vocab.\\ accuracy, ICL $-$ GD, pooled)", "model": "all", "dataset": "all", "expected_sign": 0,
        "evidence": "Tab.~\\ref{tab:icl_vs_ft}", "target": "claims", "test": "t", "unit": "test examples",
        **{k: pooled[k] for k in ("effect", "effect_lo", "effect_hi", "p", "n", "sd")},
    }]
    if best is not None:
        rows.append({
            "paper": "Shen et al.", "family": "shen_inconsistency", "claim": "The ICL--GD gap is inconsistent across "
            f"settings: strongest interaction {latex_escape(best['term'])} (partial Cohen's $f^2$)", "model": "all",
            "dataset": "all", "expected_sign": 0, "effect": float(best["F"]) * float(best["df"]) / df_denom,
            "effect_lo": np.nan, "effect_hi": np.nan, "p": float(best["p"]), "p_holm": float(best["p_holm"]),
            "n": n_obs, "evidence": "Tab.~\\ref{tab:anova}", "target": "claims", "test": "F", "unit": "answers",
            "df_num": float(best["df"]), "df_denom": df_denom, "holm_m": len(inter),
        })
    return pd.DataFrame(rows)


def permutation_claims(examples: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Shen et al.'s reference claim per model, from `compare_report.icl_gd_examples` (with permuted records)."""
    gap = compare_report.permutation_gap(examples)
    rows = []
    for model, g in gap.groupby("model", sort=True):
        per_example = g.groupby(["dataset", "uid"], sort=True)["gap"].mean().to_numpy()
        test = stats.wilcoxon(per_example, np.zeros_like(per_example), n_boot=n_boot, seed=seed)
        rows.append({
            "paper": "Shen et al.", "family": "shen_permuted", "model": model, "dataset": "all", "expected_sign": 1,
            "claim": "ICL agrees more with itself in another demonstration order than with GD: top-10 overlap, "
                     "permuted $-$ GD ($N \\ge 2$)",
            "evidence": "Tab.~\\ref{tab:compare}", "target": "compare_icl_gd", "test": "wilcoxon",
            "unit": "test examples", "samples": per_example,
            **{k: test[k] for k in ("effect", "effect_lo", "effect_hi", "p", "n")},
        })
    return pd.DataFrame(rows)


def kernel_claims(summary: pd.DataFrame) -> pd.DataFrame:
    """Han et al.'s reconstruction claim per (model, dataset): the best head (chosen on the selection part)
    reproduces ICL's prediction on the held-out queries more often than a constant vote (one-sided exact
    binomial, from the kernel stage). effect = held-out agreement - that baseline."""
    rows = []
    if summary.empty:
        return pd.DataFrame(rows)
    for r in summary.sort_values(["model", "dataset"]).itertuples():
        base = float(r.eval_const_agreement)
        rows.append({
            "paper": "Han et al.", "family": "han_kernel", "model": r.model, "dataset": r.dataset, "expected_sign": 1,
            "claim": "A kernel-regression head reproduces ICL's prediction on held-out queries: agreement $-$ "
                     "constant-vote baseline",
            "effect": float(r.eval_agreement) - base, "effect_lo": float(r.eval_agreement_lo) - base,
            "effect_hi": float(r.eval_agreement_hi) - base, "p": float(r.eval_agreement_p), "n": int(r.n_eval),
            "evidence": "Tab.~\\ref{tab:kernel}", "target": "kernel_regression", "test": "binomial",
            "unit": "held-out queries", "baseline": base,
        })
    return pd.DataFrame(rows)


def reference_effect(row: pd.Series, references: dict[str, dict[str, Any]]) -> tuple[float, float, str, str]:
    """(reference, seed effect or NaN, kind 'seed' | 'SESOI', source text) for a tested row's family."""
    ref = references.get(row["family"])
    if ref is None:
        raise ValueError(f"config key claims.references has no entry for claim family {row['family']!r}")
    if "seed" in ref:
        seed_effect = float(ref["seed"])
        if not ref.get("level"):
            return seed_effect, seed_effect, "seed", ref["source"]
        # An agreement level: carry the seed's chance-corrected agreement (kappa against its constant-vote
        # baseline) over to this row's baseline, so a skewed ICL (high baseline) asks for the same share of
        # the room above it, not for an absolute gap that a balanced task had.
        if "seed_baseline" not in ref:
            raise ValueError(f"config key claims.references.{row['family']}: level: true needs seed_baseline")
        kappa = (seed_effect - ref["seed_baseline"]) / (1 - ref["seed_baseline"])
        above = kappa * (1 - float(row["baseline"]))
        return (above if above > 0 else np.nan), seed_effect, "seed", ref["source"]
    return float(ref["sesoi"]), np.nan, "SESOI", ref["why"]


def row_power(row: pd.Series, level: float, reference: float, cfg: dict[str, Any]) -> tuple[float, float]:
    """(MDE at the row's N and Holm level, N needed for `reference`) for the test the row uses."""
    pw, sim = cfg["power"], {"n_sim": cfg["n_sim"], "seed": cfg["seed"]}
    n, ref = int(row["n"]), abs(reference) if not np.isnan(reference) else np.nan
    if row["test"] == "t":
        return power.t_mde(row["sd"], n, level, pw), power.t_n(ref, row["sd"], level, pw)
    if row["test"] == "wilcoxon":
        diffs = np.asarray(row["samples"], dtype=float)
        return (power.wilcoxon_mde(diffs, n, level, pw, **sim),
                power.wilcoxon_n(diffs, ref, level, pw, **sim) if ref == ref else np.nan)
    if row["test"] == "F":
        df_num, df_denom = int(row["df_num"]), int(row["df_denom"])
        return power.f2_mde(df_num, df_denom, level, pw), power.f2_n(ref, df_num, n - df_denom, level, pw)
    if row["test"] == "binomial":
        return power.binom_mde(n, row["baseline"], level, pw), power.binom_n(row["baseline"], ref, level, pw)
    raise ValueError(f"no power analysis for test {row['test']!r} (family {row['family']})")


def power_columns(tested: pd.DataFrame, cfg: dict[str, Any]) -> pd.DataFrame:
    """Holm level, reference effect (seed's or SESOI) with its source, MDE and N needed, per tested row."""
    levels = tested.groupby("family")["p"].transform(lambda p: pd.Series(power.holm_levels(p.to_numpy(), cfg["alpha"]),
                                                                          index=p.index))
    if "holm_m" in tested:  # rows that stand for the best of m tests Holm-adjusted elsewhere (ANOVA terms)
        levels = levels.where(tested["holm_m"].isna(), cfg["alpha"] / tested["holm_m"])
    rows = []
    for (_, row), level in zip(tested.iterrows(), levels):
        reference, seed_effect, kind, source = reference_effect(row, cfg["references"])
        mde, needed = row_power(row, level, reference, cfg)
        rows.append({"alpha_holm": level, "mde": mde, "reference": reference, "reference_kind": kind,
                     "seed_effect": seed_effect, "reference_source": source, "n_needed": needed})
    return pd.DataFrame(rows, index=tested.index)


COLUMNS = ["paper", "family", "claim", "model", "dataset", "effect", "effect_lo", "effect_hi", "p", "p_holm",
           "n", "unit", "test", "alpha_holm", "mde", "reference", "reference_kind", "seed_effect", "n_needed",
           "expected_sign", "criterion", "verdict", "reference_source", "evidence", "target"]


def claims_table(tested_parts: Iterable[pd.DataFrame], construction: pd.DataFrame, cfg: dict[str, Any]) -> pd.DataFrame:
    """All claims with Holm-adjusted p (within family), power, reference effect and a four-way verdict;
    exact (construction) claims keep their criterion's verdict."""
    tested = pd.concat([t for t in tested_parts if len(t)], ignore_index=True)
    holm = tested.groupby("family")["p"].transform(lambda p: stats.holm(p.to_numpy()))
    tested["p_holm"] = tested["p_holm"].fillna(holm) if "p_holm" in tested else holm
    tested = tested.join(power_columns(tested, cfg))
    tested["verdict"] = [
        stats.verdict(r.effect, r.effect_lo, r.effect_hi, r.p_holm, int(r.expected_sign), r.mde, r.reference,
                      cfg["alpha"]) for r in tested.itertuples()]
    tested["criterion"] = np.where(tested["expected_sign"] == 0, "two-sided",
                                   np.where(tested["expected_sign"] > 0, "> 0", "< 0"))
    exact = construction.assign(p_holm=np.nan, unit="", test="exact", reference_kind="", reference_source="")
    return pd.concat([tested, exact], ignore_index=True).reindex(columns=COLUMNS)


def _knob(row, cfg: dict[str, Any]) -> tuple[str, float, float]:
    """(config key, its current value, units per unit of it) that sets this row's N."""
    data, icl, kernel = cfg["data"], cfg["icl"], cfg["kernel"]
    if row.family.startswith("kossen_"):
        return "curves.repetitions", cfg["curves"]["repetitions"], 1.0
    if row.family == "shen_permuted":
        queries = icl["permuted_queries"] or data["n_test"]
        return "icl.permuted_queries", queries, row.n / queries
    if row.family == "han_kernel":  # held-out queries = (test + extra training queries) x (1 - select_fraction)
        extra = kernel["n_train_queries"]
        return "kernel.n_train_queries", extra, row.n / ((kernel["n_test"] or data["n_test"]) + extra)
    return "data.n_test", data["n_test"], row.n / data["n_test"]  # shen_pooled, shen_inconsistency


def sizing(table: pd.DataFrame, cfg: dict[str, Any]) -> pd.DataFrame:
    """Per tested claim: the config key that sets its N and the value that gives 80 % power at its reference.

    `needed` is for the key's own unit (repetitions, test examples per dataset, ...); for kernel.n_train_queries
    it is the extra training queries on top of the test queries. inf: no N reaches 80 % power (the reference is
    out of reach of this test, e.g. a seed level below this run's baseline gives no reference at all: NaN).
    """
    rows = []
    for r in table[table["family"] != "construction"].itertuples():
        key, current, per_unit = _knob(r, cfg)
        units = r.n_needed / per_unit if per_unit > 0 else np.nan
        if key == "kernel.n_train_queries" and np.isfinite(units):
            units = units - (cfg["kernel"]["n_test"] or cfg["data"]["n_test"])
        needed = float(max(0, int(np.ceil(units - 1e-9)))) if np.isfinite(units) else units
        measured_on = cfg.get("references", {}).get(r.family, {}).get("datasets")
        target = r.reference_kind == "seed" and (not measured_on or r.dataset in measured_on)
        rows.append({"family": r.family, "model": r.model, "dataset": r.dataset, "config_key": key,
                     "current": current, "n": r.n, "unit": r.unit, "n_needed": r.n_needed, "needed": needed,
                     "reference_kind": r.reference_kind, "target": target, "verdict": r.verdict})
    return pd.DataFrame(rows)


def sizing_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per config key: the value that powers every *target* row (a seed-quantified claim on a dataset the
    seed measured it on), i.e. the largest finite `needed` among them; rows out of reach are counted."""
    out = []
    for key, group in rows.groupby("config_key", sort=True):
        target = group[group["target"]]
        finite = target["needed"][np.isfinite(target["needed"])]
        out.append({"config_key": key, "current": group["current"].iloc[0], "target_rows": len(target),
                    "needed": float(finite.max()) if len(finite) else np.nan,
                    "unreachable_rows": int(len(target) - len(finite)), "all_rows_needed": float(group["needed"].max())})
    return pd.DataFrame(out)


def _cell(row) -> str:
    if np.isnan(row.effect_lo):
        return sci(row.effect, 2) if abs(row.effect) < 1e-3 and row.effect != 0 else fmt(row.effect, 3)
    return f"{fmt(row.effect, 3)} [{fmt(row.effect_lo, 3)}, {fmt(row.effect_hi, 3)}]"


def _p(value: float, exact: bool = False) -> str:
    """Adjusted p for the tables: "exact" for deterministic claims, "--" where no test was possible."""
    if np.isnan(value):
        return "exact" if exact else "--"
    return sci(value, 1) if value < 1e-3 else fmt(value, 3)


def _num(value: float, digits: int = 3) -> str:
    """MDE / reference / N cells: inf (no N or effect reaches 80 % power) and NaN (undefined) spelled out."""
    if pd.isna(value):
        return "--"
    if np.isinf(value):
        return "$\\infty$" if value > 0 else "$-\\infty$"
    return sci(value, 1) if 0 < abs(value) < 1e-3 else fmt(value, digits)


def _n(value: float) -> str:
    if pd.isna(value):
        return "--"
    return "$\\infty$" if np.isinf(value) else f"{int(value):,}".replace(",", "\\,")  # inf: beyond the search


def _reference(row) -> str:
    """The reference effect; a dagger marks a declared SESOI (the seed does not quantify the claim)."""
    if row.reference_kind == "":
        return "--"
    return _num(row.reference) + ("" if row.reference_kind == "seed" else "$^\\dagger$")


def _criterion(text: str) -> str:
    return text.replace("<", "$<$").replace(">", "$>$")


def claims_tex(table: pd.DataFrame) -> str:
    """The paper's claims table: measured value and CI, Holm p, the test's power (MDE at this N, the N that
    would detect the reference effect) and the four-way verdict. Each claim's text spans the table once,
    above its rows (one per model / dataset), so the numbers stay on one line each."""
    first = table["family"].ne(table["family"].shift()) | table["claim"].ne(table["claim"].shift())
    rows = []
    for r, new_claim in zip(table.itertuples(), first):
        if new_claim:
            text = f"{r.paper.replace(' et al.', '')}: {r.claim} [{_criterion(r.criterion)}]"
            rows.append([f"\\multicolumn{{8}}{{{RAGGED.format(15.6)}}}{{\\textit{{{text}}}}}"] + [""] * 7)
        rows.append([
            latex_escape(f"{r.model} / {r.dataset}") if r.model else "--", _cell(r),
            _p(r.p_holm, r.family == "construction"), _n(r.n), _num(r.mde), _reference(r), _n(r.n_needed), r.verdict])
    shown = pd.DataFrame(rows, columns=["scope", "measured [95\\% CI]", "$p_\\mathrm{Holm}$", "$n$", "MDE", "ref.",
                                        "$n_{80\\%}$", "verdict"])
    return booktabs_table(
        shown, caption=(
            "The seed papers' headline claims with the power of each test (Sec.~\\ref{sec:stats}). $n$: independent "
            "units; MDE: smallest effect detected with 80\\% power at the row's Holm level; ref.: the seed's effect "
            "or ($^\\dagger$) a declared one (Table~\\ref{tab:claim_references}); $n_{80\\%}$: units that detect "
            "ref.\\ with 80\\% power; exact: deterministic, checked against its criterion. Rule: \\texttt{claims}."),
        label="tab:claims", align=RAGGED.format(3.3) + "llrrrrl", escape=False,
        size="\\footnotesize", colsep="4pt",
    )


def references_tex(table: pd.DataFrame) -> str:
    """Where each reference effect comes from: the seed's figure or table, or why a SESOI was declared."""
    tested = table[table["reference_kind"] != ""].drop_duplicates("family")
    shown = pd.DataFrame({
        "claim family": ["\\texttt{" + latex_escape(f).replace("\\_", "\\_\\allowbreak{}") + "}" for f in tested["family"]],
        "kind": tested["reference_kind"],
        "value": [_num(v) for v in np.where(tested["reference_kind"] == "seed", tested["seed_effect"], tested["reference"])],
        "source": [latex_text(s) for s in tested["reference_source"]],
    })
    return booktabs_table(shown, caption=(
        "Reference effects of the claims table: the seed paper's effect where it quantifies the claim (seed), else "
        "a declared smallest effect of interest (SESOI). Seed values are for the seeds' models, read from the cited "
        "figure or table; Han et al.'s is an agreement level: its chance-corrected share (kappa against the stated "
        "baseline) of the room above each row's own constant-vote baseline is the row's reference. "
        "Config: \\texttt{claims.references}. Rule: \\texttt{claims}."),
        label="tab:claim_references", align=RAGGED.format(5.2) + "lr" + RAGGED.format(8.2), escape=False)


def anova_tex(anova: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "term": [latex_escape(t) for t in anova["term"]],
        "df": [fmt(v, 0) for v in anova["df"]],
        "F": [fmt(v, 2) for v in anova["F"]],
        "$p$": [_p(v) for v in anova["p"]],
        "$p_\\mathrm{Holm}$ (interactions)": [_p(v) for v in anova["p_holm"]],
    })
    tex = booktabs_table(shown, caption=(
        "Type-II ANOVA of per-example full-vocabulary correctness on method (ICL vs GD) $\\times$ (dataset + model + $N$). "
        "Significant interactions mean the ICL--GD gap changes with the setting. Rule: \\texttt{claims}."),
        label="tab:anova", align="lrrrr", escape=False)
    return tex


def claims_macros(table: pd.DataFrame) -> dict[str, str]:
    """Verdict counts, and per tested row its verdict, MDE, reference and N for 80 % power."""
    counts = table["verdict"].value_counts()
    out = {"ClaimsN": str(len(table))}
    for v in (*stats.VERDICTS, "not reproduced"):
        out[macro_name("claims", v)] = str(int(counts.get(v, 0)))
    tested = table[table["family"] != "construction"]
    out["ClaimsTested"] = str(len(tested))
    out["ClaimsDecided"] = str(int(tested["verdict"].isin(["reproduced", "contradicted"]).sum()))
    out["ClaimsAdequatelyPowered"] = str(int((tested["mde"] <= tested["reference"].abs()).sum()))
    for r in tested.itertuples():
        name = macro_name("claim", r.family, r.model, r.dataset)
        out |= {f"{name}Verdict": r.verdict, f"{name}Mde": _num(r.mde), f"{name}Ref": _num(r.reference),
                f"{name}NNeeded": _n(r.n_needed)}
    return out


def families(frames: Iterable[pd.DataFrame]) -> list[str]:
    return sorted({f for frame in frames for f in frame["family"].unique()})


def mcnemar_macros(tests: pd.DataFrame, alpha: float = ALPHA) -> dict[str, str]:
    """How many per-setting ICL-vs-GD McNemar tests survive Holm, and in which direction."""
    out = {}
    for family, group in tests.groupby("family", sort=True):
        name = "".join(part.capitalize() for part in family.split("_"))
        sig = group[group["p_holm"] < alpha]
        out |= {f"{name}N": str(len(group)), f"{name}Sig": str(len(sig)),
                f"{name}IclBetter": str(int((sig["effect"] > 0).sum())),
                f"{name}GdBetter": str(int((sig["effect"] < 0).sum()))}
    return out

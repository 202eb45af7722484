"""The claims table: every study's tested statements, Holm within each family, power, verdicts, LaTeX.

Each study builds its own rows (`iclgd.icl_vs_gd.claims`, `iclgd.label_relationships.claims`,
`iclgd.kernel_regression.claims`). Holm runs within each family. Every tested row then gets its power
(`iclgd.core.power`): the minimum detectable effect of its own test at its N and Holm level, the
reference effect (the seed's, or a declared SESOI; config `claims.references`) and the N that would
detect it; `stats.verdict` turns p, CI, MDE and reference into reproduced / contradicted / absent at
adequate power / underpowered.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import numpy as np
import pandas as pd

from iclgd.core import power, stats
from iclgd.core.paper import booktabs_table, fmt, fmt_ci, fmt_p, latex_escape, latex_text, macro_name, sci

log = logging.getLogger(__name__)


#: A ragged-right paragraph column (needs the array package): justified narrow cells leave holes.
RAGGED = ">{{\\raggedright\\arraybackslash}}p{{{}cm}}"


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
        queries = icl["permuted"]["n_queries"] or data["n_test"]
        return "icl.permuted.n_queries", queries, row.n / queries
    if row.family == "han_kernel":  # held-out queries = (test + extra training queries) x (1 - select_fraction)
        extra = kernel["n_train_queries"]
        return "kernel.n_train_queries", extra, row.n / ((kernel["n_queries"] or data["n_test"]) + extra)
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
            units = units - (cfg["kernel"]["n_queries"] or cfg["data"]["n_test"])
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
    return fmt_ci(row.effect, row.effect_lo, row.effect_hi, 3, stack=True)


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
            # the claim spans the whole line (less the outer column gaps) above its rows
            width = ">{\\raggedright\\arraybackslash}p{\\dimexpr\\linewidth-2\\tabcolsep\\relax}"
            rows.append([f"\\multicolumn{{8}}{{{width}}}{{\\textit{{{text}}}}}"] + [""] * 7)
        rows.append([
            latex_escape(f"{r.model} / {r.dataset}") if r.model else "--", _cell(r),
            fmt_p(r.p_holm, r.family == "construction"), _n(r.n), _num(r.mde), _reference(r), _n(r.n_needed), r.verdict])
    shown = pd.DataFrame(rows, columns=["scope", "measured [95\\% CI]", "$p_\\mathrm{Holm}$", "$n$", "MDE", "ref.",
                                        "$n_{80\\%}$", "verdict"])
    return booktabs_table(
        shown, caption=(
            "The seed papers' headline claims with the power of each test (Appendix~\\ref{app:stats}). $n$: independent "
            "units; MDE: smallest effect detected with 80\\% power at the row's Holm level; ref.: the seed's effect "
            "or ($^\\dagger$) a declared one (Table~\\ref{tab:claim_references}); $n_{80\\%}$: units that detect "
            "ref.\\ with 80\\% power; exact: deterministic, checked against its criterion. Rule: \\texttt{claims}."),
        label="tab:claims", align=RAGGED.format(3.3) + "llrrrrl", escape=False,
        size="\\footnotesize", colsep="4pt", long=True,
    )


def headline_tex(table: pd.DataFrame) -> str:
    """The body's claims table: one row per seed-paper claim, with how its rows (one per model / dataset)
    came out. The per-row evidence is the appendix's longtable (`claims_tex`)."""
    rows = []
    for (paper, claim), group in table.groupby(["paper", "claim"], sort=False):
        counts = group["verdict"].value_counts()
        verdicts = [v for v in (*stats.VERDICTS, "not reproduced") if counts.get(v, 0)]
        rows.append({"seed paper": latex_escape(paper.replace(" et al.", "")),
                     "claim": f"{group['claim'].iloc[0]} [{_criterion(group['criterion'].iloc[0])}]",
                     "rows": str(len(group)),
                     "verdicts": "; ".join(f"{int(counts[v])} {v}" for v in verdicts)})
    return booktabs_table(pd.DataFrame(rows), caption=(
        "The seed papers' headline claims and how this run's tests came out: one row per claim; \\emph{rows}: "
        "models / datasets tested. Verdicts (Appendix~\\ref{app:stats}): reproduced or contradicted (Holm $p < 0.05$, "
        "CI on one side), absent at adequate power (not significant although the test could detect the seed's "
        "effect), underpowered (it could not). Every row with its estimate, $p$ and power: "
        "Table~\\ref{tab:claims}. Rule: \\texttt{claims}."),
        label="tab:claims_headline", align="l" + RAGGED.format(7.4) + "r" + RAGGED.format(4.6), escape=False)


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
        label="tab:claim_references", align=RAGGED.format(4.8) + "lr" + RAGGED.format(7.6), escape=False)


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

"""The claims table as the reader sees it: the body's Table 1, the appendix's per-row longtable, the
references table and the verdict macros (from the frame `iclgd.core.claims.claims_table` builds)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from iclgd.core import stats
from iclgd.core.paper import booktabs_table, fmt, fmt_ci, fmt_p, latex_escape, latex_text, macro_name, sci

#: A ragged-right paragraph column (needs the array package): justified narrow cells leave holes.
RAGGED = ">{{\\raggedright\\arraybackslash}}p{{{}cm}}"
WIDE = ">{\\raggedright\\arraybackslash}p{\\dimexpr\\linewidth-2\\tabcolsep\\relax}"
UNIT_SHORT = {"sets x examples": "sets$\\times$ex.", "contexts": "contexts", "held-out queries": "queries"}


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
    return "$\\infty$" if np.isinf(value) else f"{int(value):,}".replace(",", "\\,")


def units(row) -> str:
    """The units of the row's test and their n at each level, e.g. '5 sets x 48 ex.'."""
    if row.test == "exact":
        return "exact"
    if row.unit == "sets x examples":
        return f"{_n(row.n_sets)} sets $\\times$ {_n(row.n_examples)} ex."
    return f"{_n(row.n)} {UNIT_SHORT.get(row.unit, row.unit)}"


def _reference(row) -> str:
    """The reference effect (a range where the seed's baseline is unknown); a dagger marks a declared SESOI."""
    if row.reference_kind == "" or pd.isna(row.reference_kind):
        return "--"
    text = _num(row.reference) if pd.isna(row.reference_hi) else f"{_num(row.reference_hi)}--{_num(row.reference)}"
    return text + ("" if row.reference_kind == "seed" else "$^\\dagger$")


def _criterion(text: str) -> str:
    return text.replace("<", "$<$").replace(">", "$>$")


def _decide(row) -> str:
    """N to reach 80 % power at the reference; for an inconclusive row, the N that would decide it."""
    if row.verdict == "inconclusive":
        return _n(row.n_decide) + "$^\\ast$"
    return _n(row.n_needed)


def claims_tex(table: pd.DataFrame) -> str:
    """The appendix's per-row claims table: units, estimate and 95 % CI, Holm p, reference, the test's MDE,
    N for 80 % power (or, starred, the N that would decide an inconclusive row) and the verdict. Negative
    controls follow in their own block."""
    rows, last = [], None
    for r in table.itertuples():
        if r.block == "negative control" and (last is None or last[0] != r.block):
            rows.append([f"\\multicolumn{{8}}{{l}}{{\\textbf{{Negative controls (expected effect 0; not counted "
                         f"as replications)}}}}"] + [""] * 7)
        if (r.block, r.family, r.claim) != last:
            text = f"{r.paper.replace(' et al.', '')}: {r.claim} [{_criterion(r.criterion)}]"
            rows.append([f"\\multicolumn{{8}}{{{WIDE}}}{{\\textit{{{text}}}}}"] + [""] * 7)
        last = (r.block, r.family, r.claim)
        rows.append([latex_escape(f"{r.model} / {r.dataset}") if r.model else "--", units(r), _cell(r),
                     fmt_p(r.p_holm, r.test == "exact"), _reference(r), _num(r.mde), _decide(r),
                     latex_escape(r.verdict)])
    shown = pd.DataFrame(rows, columns=["scope", "units", "estimate [95\\% CI]", "$p_\\mathrm{Holm}$", "ref.",
                                        "MDE", "$n_{80\\%}$", "verdict"])
    return booktabs_table(shown, caption=(
        "Every tested row of the seed papers' claims (Appendix~\\ref{app:stats}). Units: the independent units of "
        "the row's test (demonstration sets $\\times$ test examples, crossed; random contexts; held-out queries); "
        "MDE: smallest effect its own test detects with 80\\% power at the family's Bonferroni level; ref.: the "
        "seed's effect or ($^\\dagger$) a declared one (Table~\\ref{tab:claim_references}); $n_{80\\%}$: units "
        "(sets per setting, contexts, queries) that detect ref.\\ with 80\\% power; starred: the units that would "
        "decide an inconclusive row at the observed effect and variance. Rule: \\texttt{claims}."),
        label="tab:claims", align=RAGGED.format(2.6) + "lrrrrr" + RAGGED.format(2.2), escape=False,
        size="\\footnotesize", colsep="3pt", long=True)


def headline_tex(table: pd.DataFrame) -> str:
    """The body's Table 1: per claim, its unit and test, each row's estimate with its 95 % CI, and the
    verdict counts (negative controls apart)."""
    rows = []
    for (block, paper, claim), group in table.groupby(["block", "paper", "claim"], sort=False):
        counts = group["verdict"].value_counts()
        order = (*stats.VERDICTS, *stats.CONTROL_VERDICTS, "not reproduced")
        verdicts = [v for v in dict.fromkeys(order) if counts.get(v, 0)]
        estimates = "; ".join(
            f"{latex_escape(r.model)}/{latex_escape(r.dataset)} {fmt_ci(r.effect, r.effect_lo, r.effect_hi, 2)}"
            if r.model and not np.isnan(r.effect_lo) else fmt(r.effect, 3) for r in group.itertuples())
        prefix = "\\emph{control}: " if block == "negative control" else ""
        rows.append({"seed": latex_escape(paper.replace(" et al.", "")),
                     "claim [criterion]; unit": f"{prefix}{group['claim'].iloc[0]} "
                     f"[{_criterion(group['criterion'].iloc[0])}]; {units(next(group.itertuples()))}",
                     "estimates [95\\% CI]": estimates,
                     "verdicts": "; ".join(f"{int(counts[v])} {latex_escape(v)}" for v in verdicts)})
    return booktabs_table(pd.DataFrame(rows), caption=(
        "The seed papers' headline claims: one row per claim with its unit and the estimate and 95\\% CI of each "
        "model / dataset tested. Verdicts (Appendix~\\ref{app:stats}): reproduced (Holm $p < 0.05$ on the claimed "
        "side; \\emph{smaller than the reference} when the CI's far bound is below it), contradicted (the other "
        "side), absent (equivalence test against the reference at the family's level), inconclusive (neither). "
        "Controls (expected 0) are not replications. Per-row evidence: Table~\\ref{tab:claims}. Rule: "
        "\\texttt{claims}."),
        label="tab:claims_headline", align="l" + RAGGED.format(5.0) + RAGGED.format(5.4) + RAGGED.format(3.2),
        escape=False, size="\\footnotesize", colsep="3pt", long=True)  # long: many models / datasets


def references_tex(table: pd.DataFrame) -> str:
    """Where each reference effect comes from: the seed's figure or table, or why a SESOI was declared."""
    tested = table[table["reference_kind"].fillna("") != ""].drop_duplicates("family")
    value = [(_num(s) if k == "seed" else _num(r)) for s, r, k in
             zip(tested["seed_effect"], tested["reference"], tested["reference_kind"])]
    shown = pd.DataFrame({
        "claim family": ["\\texttt{" + latex_escape(f).replace("\\_", "\\_\\allowbreak{}") + "}" for f in tested["family"]],
        "kind": tested["reference_kind"], "value": value,
        "source": [latex_text(s) for s in tested["reference_source"]],
    })
    return booktabs_table(shown, caption=(
        "Reference effects of the claims table: the seed paper's effect where it quantifies the claim (seed), else "
        "a declared smallest effect of interest (SESOI). Seed values are for the seeds' models, read from the cited "
        "figure or table at the design point this run tests (Kossen et al.'s curves re-aligned for their plot's "
        "5-wide moving average); Han et al.'s is an agreement level whose constant-vote baseline the paper does not "
        "report: its chance-corrected share (kappa) over the range of possible baselines gives a range of "
        "references. Config: \\texttt{claims.references}. Rule: \\texttt{claims}."),
        label="tab:claim_references", align=RAGGED.format(4.8) + "lr" + RAGGED.format(7.6), escape=False)


def claims_macros(table: pd.DataFrame) -> dict[str, str]:
    """Verdict counts (claims apart from controls), and per tested row its verdict, estimate, MDE and N."""
    claims = table[table["block"] == "claim"]
    counts = claims["verdict"].value_counts()
    out = {"ClaimsN": str(len(claims))}
    for v in (*stats.VERDICTS, "not reproduced"):
        out[macro_name("claims", v)] = str(int(counts.get(v, 0)))
    controls = table[table["block"] == "negative control"]
    out["ClaimsControls"] = str(len(controls))
    for v in stats.CONTROL_VERDICTS:
        out[macro_name("controls", v)] = str(int((controls["verdict"] == v).sum()))
    tested = claims[claims["test"] != "exact"]
    out["ClaimsTested"] = str(len(tested))
    out["ClaimsDecided"] = str(int(tested["verdict"].isin(["reproduced", "reproduced, smaller than the reference",
                                                            "contradicted", "absent"]).sum()))
    for r in table[table["test"] != "exact"].itertuples():
        name = macro_name("claim", r.family, r.model, r.dataset)
        out |= {f"{name}Verdict": r.verdict, f"{name}Mde": _num(r.mde), f"{name}Ref": _num(r.reference),
                f"{name}NNeeded": _n(r.n_needed), f"{name}Est": fmt(r.effect, 3)}
    return out

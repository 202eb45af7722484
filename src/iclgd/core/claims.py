"""The claims table: every study's tested statements, Holm within each family, power, verdicts.

Each study with claims builds its own rows in its own rule (written by `iclgd.core.claim_rows`), each with its
test's estimate, 95 % and (1 - 2 alpha) intervals, p and a `plan` for the power of that same test. Holm runs within each family, for the test's p and for the
equivalence p against the reference (the seed's effect or a declared SESOI; config `claims.references`).
`stats.verdict` then reads the intervals against the reference: reproduced (at the reference's size or
smaller than it), contradicted, absent (equivalence), inconclusive (with the N that would decide it).
Negative controls (expected effect 0) form their own block, outside the replication counts; exact rows
(test "exact", a construction's criterion) keep their own verdict. The LaTeX views are in
`iclgd.core.claims_tex`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from iclgd.core import power, stats
from iclgd.core.paper import fmt

log = logging.getLogger(__name__)


def reference_effect(row: pd.Series, references: dict[str, dict[str, Any]]) -> tuple[float, float, float, str, str]:
    """(reference, reference at the other end of its range or NaN, seed effect or NaN, kind 'seed' | 'SESOI',
    source text) for a tested row's family."""
    ref = references.get(row["family"])
    if ref is None:
        raise ValueError(f"config key claims.references has no entry for claim family {row['family']!r}")
    if "seed" in ref:
        seed_effect = float(ref["seed"])
        if not ref.get("level"):
            return seed_effect, np.nan, seed_effect, "seed", ref["source"]
        # An agreement level: its chance-corrected share (kappa) of the room above the seed's constant-vote
        # baseline, carried to this row's own baseline. The seed does not report its baseline: a range of
        # baselines gives a range of kappas, and a verdict must hold across it.
        if "seed_baseline" not in ref:
            raise ValueError(f"config key claims.references.{row['family']}: level: true needs seed_baseline "
                             "(one value or [low, high])")
        baselines = np.atleast_1d(np.asarray(ref["seed_baseline"], dtype=float))
        above = [(seed_effect - b) / (1 - b) * (1 - float(row["baseline"])) for b in baselines]
        above = [a if a > 0 else np.nan for a in above]
        return max(above), (min(above) if len(above) > 1 else np.nan), seed_effect, "seed", ref["source"]
    return float(ref["sesoi"]), np.nan, np.nan, "SESOI", ref["why"]


def tost_raw(row: Any, margin: float) -> float:
    """The row's equivalence p against `margin` (TOST; non-superiority for a directed claim)."""
    if np.isnan(margin):
        return np.nan
    if row.test == "welch-F":  # share of the parametric-bootstrap spreads at or above the margin
        return float(np.mean(np.asarray(row.plan["result"]["spread_draws"]) >= abs(margin)))
    sign = 0 if row.negative_control else int(row.expected_sign)
    return stats.tost_p(row.effect, row.se, row.df, margin, sign)


def _judge(row: Any, p_tost_adj: float, reference: float, alpha: float) -> str:
    if row.negative_control:
        return stats.control_verdict(row.effect, row.effect_lo, row.effect_hi, row.p_holm, p_tost_adj, alpha)
    return stats.verdict(row.effect, row.effect_lo, row.effect_hi, row.p_holm, p_tost_adj, int(row.expected_sign),
                         reference, alpha)


def verdicts(tested: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Equivalence p (raw and Holm within the family) and the verdict at each end of the reference's range;
    where the ends disagree the verdict is the part they share, and `verdict_note` says which end decides."""
    out = []
    for end in ("reference", "reference_hi"):
        raw = pd.Series([tost_raw(r, getattr(r, end)) for r in tested.itertuples()], index=tested.index)
        adj = raw.groupby(tested["family"]).transform(lambda p: stats.holm(p.to_numpy()))
        out.append((raw, adj, [_judge(r, a, getattr(r, end), alpha) for r, a in zip(tested.itertuples(), adj)]))
    (raw, adj, low), (_, adj_hi, high) = out
    final, notes = [], []
    for r, v_lo, v_hi in zip(tested.itertuples(), low, high):
        if np.isnan(r.reference_hi) or v_lo == v_hi:
            final.append(v_lo)
            notes.append("")
        else:
            both_repro = v_lo.startswith("reproduced") and v_hi.startswith("reproduced")
            final.append("reproduced" if both_repro else "inconclusive")
            notes.append(f"{v_lo} at ref. {fmt(r.reference, 3)}; {v_hi} at ref. {fmt(r.reference_hi, 3)}")
    return pd.DataFrame({"p_tost": raw, "p_tost_holm": adj, "verdict": final, "verdict_note": notes},
                        index=tested.index)


def power_columns(tested: pd.DataFrame, cfg: dict[str, Any]) -> pd.DataFrame:
    """Planning level alpha / m, reference (seed's or SESOI) with its source, MDE, power at the reference,
    N that detects it and N that would decide the row, each for the row's own test."""
    m = tested.groupby("family")["p"].transform(lambda p: int(p.notna().sum()))
    rows = []
    for (_, row), m_fam in zip(tested.iterrows(), m):
        level = power.family_level(cfg["alpha"], m_fam)
        reference, ref_hi, seed_effect, kind, source = reference_effect(row, cfg["references"])
        plan, pw = row["plan"], cfg["power"]
        usable = isinstance(plan, dict) and not np.isnan(row["p"])
        rows.append({
            "alpha_plan": level, "reference": reference, "reference_hi": ref_hi, "reference_kind": kind,
            "seed_effect": seed_effect, "reference_source": source,
            "mde": power.mde(plan, level, pw) if usable else np.nan,
            "power_at_ref": power.power_at(plan, reference, level) if usable and reference == reference else np.nan,
            "n_needed": power.n_for(plan, reference, level, pw) if usable and not row["negative_control"] else np.nan,
            "n_decide": power.n_to_decide(plan, row["effect"], reference, level, pw) if usable else np.nan,
        })
    return pd.DataFrame(rows, index=tested.index)


COLUMNS = ["paper", "family", "block", "claim", "model", "dataset", "effect", "effect_lo", "effect_hi", "tost_lo",
           "tost_hi", "p", "p_holm", "p_tost", "p_tost_holm", "test", "unit", "n", "n_sets", "n_examples",
           "n_contexts", "n_queries", "alpha_plan", "mde", "power_at_ref", "reference", "reference_hi",
           "reference_kind", "seed_effect", "n_needed", "n_decide", "expected_sign", "criterion", "verdict",
           "verdict_note", "reference_source", "evidence", "target"]


def claims_table(tested_parts: Iterable[pd.DataFrame], exact_parts: Iterable[pd.DataFrame],
                 cfg: dict[str, Any]) -> pd.DataFrame:
    """All claims: Holm-adjusted p and equivalence p within each family, power for the test run, reference
    effect and verdict; negative controls in their own block; exact claims keep their criterion's verdict."""
    tested = pd.concat([t for t in tested_parts if len(t)], ignore_index=True)
    for col, default in (("negative_control", False), ("se", np.nan), ("df", np.nan), ("plan", None)):
        tested[col] = tested[col] if col in tested else default
    tested["negative_control"] = tested["negative_control"].fillna(False).astype(bool)
    holm = tested.groupby("family")["p"].transform(lambda p: stats.holm(p.to_numpy()))
    tested["p_holm"] = tested["p_holm"].fillna(holm) if "p_holm" in tested else holm
    tested = tested.join(power_columns(tested, cfg))
    tested = tested.join(verdicts(tested, cfg["alpha"]))
    tested["block"] = np.where(tested["negative_control"], "negative control", "claim")
    tested["criterion"] = np.where(tested["negative_control"], "= 0 (control)",
                                   np.where(tested["expected_sign"] == 0, "two-sided",
                                            np.where(tested["expected_sign"] > 0, "> 0", "< 0")))
    exact = pd.concat([e for e in exact_parts if len(e)] or [pd.DataFrame()], ignore_index=True)
    exact = exact.assign(p_holm=np.nan, unit="", test="exact", reference_kind="", reference_source="", block="claim")
    table = pd.concat([tested, exact], ignore_index=True).reindex(columns=COLUMNS)
    order = table["block"].map({"claim": 0, "negative control": 1})
    return table.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


#: A study's knob: (row, cfg) -> (config key, its current value, the row's planning units per unit of it, units
#: on top of which the key counts) that sets a claim row's N (iclgd.core.studies.StudySpec.knob).
Knob = Callable[[Any, dict[str, Any]], tuple[str, float, float, float]]


def sizing(table: pd.DataFrame, cfg: dict[str, Any], knobs: Mapping[str, Knob]) -> pd.DataFrame:
    """Per tested claim: the config key that sets its N (`knobs[family]`, its study's) and the value that gives
    80 % power at its reference.

    `needed` is for the key's own unit (repetitions, demonstration sets, ...), beyond the units the key counts
    on top of (kernel.n_train_queries: the extra training queries on top of the test queries). inf: no N reaches 80 % power (the reference is
    out of reach of this test, e.g. a seed level below this run's baseline gives no reference at all: NaN).
    """
    rows = []
    for r in table[(table["test"] != "exact") & (table["block"] == "claim")].itertuples():
        key, current, per_unit, on_top_of = knobs[r.family](r, cfg)
        units = r.n_needed / per_unit if per_unit > 0 else np.nan
        if on_top_of and np.isfinite(units):
            units = units - on_top_of
        needed = float(max(0, int(np.ceil(units - 1e-9)))) if np.isfinite(units) else units
        measured_on = cfg.get("references", {}).get(r.family, {}).get("datasets")
        target = r.reference_kind == "seed" and (not measured_on or r.dataset in measured_on)
        rows.append({"family": r.family, "model": r.model, "dataset": r.dataset, "config_key": key,
                     "current": current, "n": r.n, "unit": r.unit, "n_needed": r.n_needed, "needed": needed,
                     "n_decide": r.n_decide,
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


def families(frames: Iterable[pd.DataFrame]) -> list[str]:
    return sorted({f for frame in frames for f in frame["family"].unique()})


def assemble(parts: Iterable[Any], specs: Mapping[str, Any], cfg: dict[str, Any],
             sizing_cfg: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims table and its sizing from every study's claim rows (iclgd.core.claim_rows.ClaimRows), in the
    studies' order; each family's N is sized by its own study's knob (`specs`: name -> StudySpec)."""
    parts = sorted(parts, key=lambda rows: specs[rows.study].position)
    table = claims_table([p.tested for p in parts], [p.exact for p in parts], cfg)
    knobs = {family: specs[p.study].knob for p in parts if len(p.tested) for family in p.tested["family"].unique()}
    return table, sizing(table, sizing_cfg | {"references": cfg["references"]}, knobs)

"""Shen et al.'s claims as tested statements (rows of the claims table; `iclgd.core.claims` adds power
and verdicts):

Every ICL-vs-GD test is about demonstration sets (several seeded sets per dataset and k, each with its
fine-tuned twin) and test examples, crossed: `iclgd.core.crossed` gives the two-way cluster-robust t with
Satterthwaite df, and the same example under two models, two k or two GD variants is one cluster.
Label-restricted accuracy (both arms answer among the label words) is primary; full-vocabulary accuracy is
secondary, beside each arm's rate of non-label top-1 answers.

* ``shen_icl_vs_gd_{label,full_vocab}``: per (model, dataset, k, GD variant), with the power of each test for
  a 20-point gap (the "S of N significant" sentence carries it);
* ``shen_pooled`` (``_full_vocab``): the ICL - GD gap averaged over settings;
* ``shen_inconsistency``: "the trends are inconsistent across datasets and N": Welch's test that the
  per-setting gaps are equal, effect = their SD;
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from iclgd.core import crossed, power, stats
from iclgd.core.paper import fmt, macro_name
from iclgd.finetune import report as finetune_report

log = logging.getLogger(__name__)


PAIR_KEYS = ["model", "dataset", "k", "seed", "uid"]


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
    if chosen.empty:  # no fine-tuned run learned its demonstrations anywhere: Shen's claims are "not tested"
        log.warning("no fine-tuning run learned its demonstrations: nothing to pair with ICL")
    elif paired.empty:  # selected runs exist but match no ICL record: a keying bug, not a finding
        raise ValueError(f"no ICL and fine-tuning records share the keys {PAIR_KEYS}")
    return paired.sort_values(PAIR_KEYS + ["variant"], ignore_index=True)


METRICS = {"correct": "label", "full": "full_vocab"}


def icl_vs_gd_tests(paired: pd.DataFrame, alpha: float, gap: float = 0.2) -> pd.DataFrame:
    """Per (model, dataset, k, GD variant): the crossed t test (demonstration sets x test examples) of ICL -
    GD accuracy, label-restricted (primary) and full-vocabulary; Holm within each metric's family, and each
    test's power to detect a `gap` (20 points) at the family's Bonferroni level."""
    if paired.empty:
        return pd.DataFrame(columns=["model", "dataset", "k", "variant", "family", "effect", "p", "p_holm", "power_gap"])
    rows = []
    for key, group in paired.groupby(["model", "dataset", "k", "variant"], sort=True):
        for metric, name in METRICS.items():
            diff = group[f"{metric}_icl"] - group[f"{metric}_gd"]
            row = crossed.crossed_row(group, diff, pd.Series("one", index=group.index), alpha)
            rows.append({**dict(zip(["model", "dataset", "k", "variant"], key)), "family": f"shen_icl_vs_gd_{name}",
                         **{k: v for k, v in row.items() if k != "plan"}, "plan": row["plan"]})
    out = pd.DataFrame(rows)
    out["p_holm"] = out.groupby("family")["p"].transform(lambda p: stats.holm(p.to_numpy()))
    m = out.groupby("family")["p"].transform("size")
    out["power_gap"] = [power.power_at(r.plan, gap, power.family_level(alpha, n)) for r, n in zip(out.itertuples(), m)]
    return out.drop(columns="plan")


def nonlabel_rates(icl: pd.DataFrame, ft: pd.DataFrame, ft_dev: pd.DataFrame) -> pd.DataFrame:
    """Per (model, arm): the share of answers whose full-vocabulary top-1 token is no label token.
    Full-vocab accuracy penalises these; GD, trained on the label token, learns the answer format, ICL need
    not. A (model, dataset)'s label tokens are the top-1 tokens of its full-vocabulary-correct answers in
    any arm (records keep the class, not its token; a class never answered correctly is then missed,
    which can only lower the rate)."""
    chosen = finetune_report.selected_records(ft, ft_dev)
    frames = {"ICL": icl[(icl["method"] == "icl") & (icl["k"] > 0)], "GD": chosen}
    both = pd.concat([icl, chosen], ignore_index=True)
    labels = both[both["full_correct"].astype(bool)].groupby(["model", "dataset"])["argmax_token"].agg(set)
    rows = []
    for arm, frame in frames.items():
        if frame.empty:
            continue
        known = [labels.get((m, d), set()) for m, d in zip(frame["model"], frame["dataset"])]
        nonlabel = [t not in k for t, k in zip(frame["argmax_token"], known)]
        rates = frame.assign(nonlabel=nonlabel).groupby("model")["nonlabel"].agg(["mean", "size"]).reset_index()
        rows.append(rates.assign(arm=arm))
    cols = ["model", "arm", "mean", "size"]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


def pooled_row(paired: pd.DataFrame, metric: str, alpha: float) -> dict[str, Any]:
    """ICL - GD accuracy averaged over settings (model, dataset, k, variant weigh equally), crossed t."""
    settings = crossed.setting_labels(paired, ["model", "dataset", "k", "variant"])
    return crossed.crossed_row(paired, paired[f"{metric}_icl"] - paired[f"{metric}_gd"], settings, alpha)


def inconsistency_row(paired: pd.DataFrame, alpha: float, seed: int) -> dict[str, Any]:
    """Shen et al.'s "inconsistent across settings": do the per-setting ICL - GD gaps (label-restricted)
    differ? Welch's F over the settings' crossed means; effect = SD of the setting gaps."""
    settings = crossed.setting_labels(paired, ["model", "dataset", "k", "variant"])
    test = crossed.heterogeneity_test((paired["correct_icl"] - paired["correct_gd"]).to_numpy(), **crossed.design_ids(paired),
                                      settings=settings.to_numpy(), seed=seed, alpha=alpha)
    sets = crossed.sets_per(paired, settings)
    plan = {"test": "welch-F", "result": test, "n": float(sets), "max_effect": 1.0}
    return {k: test[k] for k in ("effect", "effect_lo", "effect_hi", "tost_lo", "tost_hi", "p", "n_sets",
                                 "n_examples", "df_num", "df_denom")} | {
        "n": int(round(sets)), "unit": "sets x examples", "test": "welch-F", "plan": plan}


SHEN = {"paper": "Shen et al.", "model": "all", "dataset": "all", "evidence": "Tab.~\\ref{tab:icl_vs_ft}",
        "target": "claims"}


def shen_claims(paired: pd.DataFrame, alpha: float, seed: int) -> pd.DataFrame:
    """Shen et al.'s accuracy claims: ICL and GD differ (pooled; label-restricted accuracy primary, full
    vocabulary secondary), and the gap is inconsistent across settings. Without a learned GD run they have
    no data ("not tested")."""
    if paired.empty:
        return pd.DataFrame([{**SHEN, "family": "shen_pooled", "expected_sign": 0, "p": np.nan, "n": 0,
                              "effect": np.nan, "effect_lo": np.nan, "effect_hi": np.nan, "test": "crossed-t",
                              "unit": "sets x examples", "claim": "ICL and GD on the same demonstrations differ"}])
    rows = [{**SHEN, "family": "shen_pooled", "expected_sign": 0, "claim": "ICL and GD on the same demonstrations "
             "differ (label-restricted accuracy, ICL $-$ GD, averaged over settings)", **pooled_row(paired, "correct", alpha)},
            {**SHEN, "family": "shen_pooled_full_vocab", "expected_sign": 0, "claim": "\\ldots\\ in full-vocabulary "
             "accuracy (secondary: penalises non-label answers, which GD learns away)", **pooled_row(paired, "full", alpha)}]
    if paired.groupby(["model", "dataset", "k", "variant"]).ngroups > 1:
        rows.append({**SHEN, "family": "shen_inconsistency", "expected_sign": 0, "evidence": "Tab.~\\ref{tab:icl_vs_ft}",
                     "claim": "The ICL--GD gap is inconsistent across settings (model, dataset, $N$): SD of the "
                     "per-setting gaps, Welch test of their equality", **inconsistency_row(paired, alpha, seed)})
    return pd.DataFrame(rows)


def setting_macros(tests: pd.DataFrame, alpha: float) -> dict[str, str]:
    """How many per-setting ICL-vs-GD tests survive Holm, in which direction, and their mean power for a
    20-point gap (0 of 0 for a family without tests: the paper's sentences still read)."""
    out = {}
    for name in METRICS.values():
        prefix = "".join(part.capitalize() for part in f"shen_icl_vs_gd_{name}".split("_"))
        group = tests[tests["family"] == f"shen_icl_vs_gd_{name}"]
        sig = group[group["p_holm"] < alpha]
        out |= {f"{prefix}N": str(len(group)), f"{prefix}Sig": str(len(sig)),
                f"{prefix}IclBetter": str(int((sig["effect"] > 0).sum())),
                f"{prefix}GdBetter": str(int((sig["effect"] < 0).sum())),
                f"{prefix}PowerTwenty": fmt(100 * group["power_gap"].mean(), 0) if len(group) else "--"}
    return out


def nonlabel_macros(rates: pd.DataFrame, models: list[str]) -> dict[str, str]:
    """Per (model, arm): the percentage of non-label top-1 answers ("--" where the arm has no answers)."""
    out = {macro_name("nonlabel", m, arm): "--" for m in models for arm in ("ICL", "GD")}
    out |= {macro_name("nonlabel", r.model, r.arm): fmt(100 * r.mean, 1) for r in rates.itertuples()}
    first = models[0] if models else ""  # the paper's sentence quotes the first fine-tuned model
    return out | {"NonlabelModel": first.replace("-", "--"), "NonlabelIcl": out.get(macro_name("nonlabel", first, "ICL"), "--"),
                  "NonlabelGd": out.get(macro_name("nonlabel", first, "GD"), "--")}

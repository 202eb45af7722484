"""Shen et al.'s and Dai et al.'s ICL-vs-GD comparison metrics on the pipeline's records, for the paper.

Shen et al. (ICML 2024, Sec. 5 / Table 2) compare ICL with the model fine-tuned on the same N
demonstrations by full-vocabulary accuracy, top-10 token overlap and the cosine of the two output
distributions on the overlapping tokens; Dai et al. (2023) by Rec2FTP. Here the fine-tuned side is
the dev-selected learning rate at the final epoch; zero-shot (k = 0) is the reference for the
output-distribution shifts. Shen et al.'s reference is ICL against itself under another demonstration
order (`method` "icl_permuted"): an "ICL = GD" reading needs GD at least as close to ICL as that.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from iclgd import compare, finetune_report
from iclgd.paper import booktabs_table, fmt, latex_escape, macro_name


PERMUTED = "icl_permuted"


def icl_gd_examples(
    icl: pd.DataFrame, ft: pd.DataFrame, ft_dev: pd.DataFrame, permuted: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per-example metrics of ICL (k >= 1, first ordering) against each selected GD variant and, when
    `permuted` records (rule icl's other orderings) are given, against ICL in those orderings."""
    others = [finetune_report.final_epoch(finetune_report.selected_records(ft, ft_dev))]
    if permuted is not None and len(permuted):
        others.append(permuted[permuted["order"] > 0].assign(method=PERMUTED))
    icl_runs = icl[(icl["method"] == "icl") & (icl["k"] > 0) & (icl["order"] == 0)]
    zero = icl[(icl["method"] == "icl") & (icl["k"] == 0)]
    return compare.compare_examples(icl_runs, pd.concat(others, ignore_index=True), zero)


def summary(examples: pd.DataFrame) -> pd.DataFrame:
    return compare.summarise(examples)


def permutation_gap(examples: pd.DataFrame, metric: str = "token_overlap") -> pd.DataFrame:
    """Per (model, dataset, k, seed, uid) with both sides: `metric` of ICL vs ICL-permuted, vs the GD
    variant, and their difference (positive: ICL is closer to itself than to GD). One row per GD variant."""
    keys = list(compare.KEYS)
    perm = examples[examples["method"] == PERMUTED]
    if perm.empty:
        return pd.DataFrame(columns=[*keys, "optimizer", "subset", "permuted", "gd", "gap"])
    perm = perm.groupby(keys, sort=True)[metric].mean().rename("permuted").reset_index()  # mean over orders
    gd = examples[examples["method"] != PERMUTED][[*keys, "optimizer", "subset", metric]].rename(columns={metric: "gd"})
    out = gd.merge(perm, on=keys, how="inner")
    return out.assign(gap=out["permuted"] - out["gd"])


def table_tex(table: pd.DataFrame) -> str:
    """One row per (model, dataset, k, GD variant): the comparison metrics, rounded for the paper, with
    ICL-vs-ICL-permuted overlap and cosine beside ICL-vs-GD (-- where N = 1 has no other order)."""
    keys = ["model", "dataset", "k"]
    perm = table[table["method"] == PERMUTED].groupby(keys, as_index=False)[["token_overlap", "overlap_cosine"]].mean()
    table = table[table["method"] != PERMUTED].merge(perm, on=keys, how="left", suffixes=("", "_perm"))
    both = lambda a, b: f"{fmt(a, 2)} / {fmt(b, 2) if b == b else '--'}"  # noqa: E731
    rows = pd.DataFrame({
        "model": [latex_escape(m) for m in table["model"]],
        "dataset": [latex_escape(d) for d in table["dataset"]],
        "$N$": table["k"].astype(int).astype(str),
        "GD": [latex_escape(f"{o}/{s}") for o, s in zip(table["optimizer"], table["subset"])],
        "acc.\\ ICL / GD": [f"{fmt(100 * a)} / {fmt(100 * b)}" for a, b in zip(table["acc_full_icl"], table["acc_full_other"])],
        "overlap@10 GD / perm.": [both(a, b) for a, b in zip(table["token_overlap"], table["token_overlap_perm"])],
        "overlap cos.\\ GD / perm.": [both(a, b) for a, b in zip(table["overlap_cosine"], table["overlap_cosine_perm"])],
        "Rec2FTP ($n$)": [f"{fmt(v, 2) if v == v else '--'} ({int(n)})" for v, n in zip(table["rec2ftp_full"], table["rec2ftp_full_n"])],
        "KL ICL / GD": [f"{fmt(a, 2)} / {fmt(b, 2)}" for a, b in zip(table["label_kl_icl"], table["label_kl_other"])],
        "shift cos.": [fmt(v, 2) for v in table["shift_cosine"]],
    })
    return booktabs_table(
        rows, escape=False, label="tab:compare", align="lllllrrrrr",
        caption=(
            "ICL against GD on the same $N$ demonstrations (dev-selected learning rate, final epoch), per test "
            "example then averaged. Accuracy: top-1 over the full vocabulary (\\%). overlap@10: "
            "$|T_{10}^{\\mathrm{ICL}} \\cap T_{10}^{\\mathrm{GD}}|/10$; overlap cos.: cosine of the two "
            "next-token distributions on the shared top-10 tokens; perm.: the same two numbers for ICL against "
            "ICL with the demonstrations in another order (Shen et al.'s reference; none exists for $N=1$); Rec2FTP~\\citep{dai2023gpt}: of the test "
            "examples zero-shot gets wrong and GD right (full vocabulary, $n$), the share ICL gets right; KL: "
            "KL(method $\\|$ zero-shot) of the label distribution (nats); shift cos.: cosine between the ICL "
            "and GD shifts of the label log-probabilities from zero-shot. Rule: \\texttt{compare\\_icl\\_gd}."
        ),
    )


def _gd(examples: pd.DataFrame) -> pd.DataFrame:
    return examples[examples["method"] != PERMUTED]


def summary_tex(examples: pd.DataFrame) -> str:
    """One generated sentence per model: the headline means, so the text never goes stale."""
    parts = []
    for model, group in _gd(examples).groupby("model", sort=True):
        text = (
            f"for \\texttt{{{latex_escape(model)}}}, the top-10 next-token sets of ICL and GD share "
            f"{fmt(group['token_overlap'].mean(), 2)} of their tokens on average, with overlap cosine "
            f"{fmt(group['overlap_cosine'].mean(), 2)}, and the cosine between the two methods' shifts of the "
            f"label log-probabilities away from zero-shot is {fmt(group['shift_cosine'].mean(), 2)}"
        )
        gap = permutation_gap(examples[examples["model"] == model])
        if len(gap):
            text += (
                f"; where another demonstration order exists ($N \\ge 2$), ICL shares {fmt(gap['permuted'].mean(), 2)} "
                f"of its top-10 tokens with itself reordered against {fmt(gap['gd'].mean(), 2)} with GD"
            )
        parts.append(text)
    text = "Averaged over all settings, " + "; ".join(parts) + "." if parts else ""
    return "% Generated by rule compare_icl_gd.\n" + text + "\n"


def macros(table: pd.DataFrame, examples: pd.DataFrame) -> dict[str, str]:
    """Per-model means of the headline metrics (over all datasets, N and variants; examples weighted equally),
    and of the ICL-vs-ICL-permuted reference on the N >= 2 examples that have it."""
    out = {}
    for model, group in _gd(examples).groupby("model", sort=True):
        out[macro_name("Overlap", model)] = fmt(group["token_overlap"].mean(), 2)
        out[macro_name("OverlapCos", model)] = fmt(group["overlap_cosine"].mean(), 2)
        out[macro_name("ShiftCos", model)] = fmt(group["shift_cosine"].mean(), 2)
        for metric, name in (("token_overlap", "Overlap"), ("overlap_cosine", "OverlapCos")):
            gap = permutation_gap(examples[examples["model"] == model], metric)
            if len(gap):
                out[macro_name(f"{name}Perm", model)] = fmt(gap["permuted"].mean(), 2)
                out[macro_name(f"{name}GdPaired", model)] = fmt(gap["gd"].mean(), 2)
    out["CompareNSettings"] = str(int((table["method"] != PERMUTED).sum()))
    return out

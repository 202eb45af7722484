"""Shen et al.'s and Dai et al.'s ICL-vs-GD comparison metrics on the pipeline's records, for the paper.

Shen et al. (ICML 2024, Sec. 5 / Table 2) compare ICL with the model fine-tuned on the same N
demonstrations by full-vocabulary accuracy, top-10 token overlap and the cosine of the two output
distributions on the overlapping tokens; Dai et al. (2023) by Rec2FTP. Here the fine-tuned side is
the dev-selected learning rate among the runs that learned their demonstrations; zero-shot (k = 0) is the reference for the
output-distribution shifts. Shen et al.'s reference is ICL against itself under another demonstration
order (`method` "icl_permuted"): an "ICL = GD" reading needs GD at least as close to ICL as that.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from iclgd.core.metrics import rec2ftp
from iclgd.core.paper import booktabs_table, fmt, latex_escape, macro_name
from iclgd.compare import distributions
from iclgd.finetune import report as finetune_report


PERMUTED = "icl_permuted"


def icl_gd_examples(
    icl: pd.DataFrame, ft: pd.DataFrame, ft_dev: pd.DataFrame, permuted: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per-example metrics of ICL (k >= 1, first ordering) against each selected GD variant and, when
    `permuted` records (rule icl's other orderings) are given, against ICL in those orderings."""
    others = [finetune_report.selected_records(ft, ft_dev)]
    if permuted is not None and len(permuted):
        others.append(permuted[permuted["order"] > 0].assign(method=PERMUTED))
    icl_runs = icl[(icl["method"] == "icl") & (icl["k"] > 0) & (icl["order"] == 0)]
    zero = icl[(icl["method"] == "icl") & (icl["k"] == 0)]
    return distributions.compare_examples(icl_runs, pd.concat(others, ignore_index=True), zero)


def same_queries(examples: pd.DataFrame) -> pd.DataFrame:
    """The examples every column of a table may average over: in a (model, dataset, k, seed) setting with
    ICL-permuted records, only the test queries that have them (rule icl scores the permuted copy on the
    first icl.permuted.n_queries only, and GD averaged over all queries beside a permuted reference on a
    few would compare different examples); a setting without any (N = 1) keeps all its examples."""
    keys, setting = list(distributions.KEYS), ["model", "dataset", "k", "seed"]
    perm = examples.loc[examples["method"] == PERMUTED, keys]
    if perm.empty:
        return examples
    index = lambda frame, cols: pd.MultiIndex.from_frame(frame[cols])  # noqa: E731
    paired = index(examples, keys).isin(index(perm, keys))
    has_reference = index(examples, setting).isin(index(perm, setting))
    return examples[paired | ~has_reference]


def summary(examples: pd.DataFrame) -> pd.DataFrame:
    """The per-setting table (`distributions.summarise`) over `same_queries`, so GD and the permuted reference
    average over the same test queries."""
    return distributions.summarise(same_queries(examples))


def permutation_gap(examples: pd.DataFrame, metric: str = "token_overlap") -> pd.DataFrame:
    """Per (model, dataset, k, seed, uid) with both sides: `metric` of ICL vs ICL-permuted, vs the GD
    variant, and their difference (positive: ICL is closer to itself than to GD). One row per GD variant."""
    keys = list(distributions.KEYS)
    perm = examples[examples["method"] == PERMUTED]
    if perm.empty:
        return pd.DataFrame(columns=[*keys, "optimizer", "subset", "permuted", "gd", "gap"])
    perm = perm.groupby(keys, sort=True)[metric].mean().rename("permuted").reset_index()  # mean over orders
    gd = examples[examples["method"] != PERMUTED][[*keys, "optimizer", "subset", metric]].rename(columns={metric: "gd"})
    out = gd.merge(perm, on=keys, how="inner")
    return out.assign(gap=out["permuted"] - out["gd"])


#: Caption of tab:compare (`table_tex`).
COMPARE_CAPTION = (
    "ICL against GD on the same $N$ demonstrations (dev-selected learning rate among the runs that learned "
    "their demonstrations), per test "
    "example then averaged; rows grouped by model. Accuracy: top-1 over the full vocabulary (\\%). overlap@10: "
    "$|T_{10}^{\\mathrm{ICL}} \\cap T_{10}^{\\mathrm{GD}}|/10$; overlap cos.: cosine of the two "
    "next-token distributions on the shared top-10 tokens; perm.: the same two numbers for ICL against "
    "ICL with the demonstrations in another order (Shen et al.'s reference; none exists for $N=1$); "
    "Rec2FTP~\\citep{dai2023gpt}: of the test "
    "examples zero-shot gets wrong and GD right (full vocabulary, $n$), the share ICL gets right; KL: "
    "KL(method $\\|$ zero-shot) of the label distribution (nats); shift cos.: cosine between the ICL "
    "and GD shifts of the label log-probabilities from zero-shot. For $N \\ge 2$ every column averages "
    "over the test examples that have the permuted reference (the first \\texttt{icl.permuted.n\\_queries}), "
    "for $N = 1$ over all of them. Rule: \\texttt{compare\\_icl\\_gd}."
)


def table_tex(table: pd.DataFrame) -> str:
    """One row per (model, dataset, k, GD variant): the comparison metrics, rounded for the paper, with
    ICL-vs-ICL-permuted overlap and cosine beside ICL-vs-GD (-- where N = 1 has no other order)."""
    keys = ["model", "dataset", "k"]
    perm = table[table["method"] == PERMUTED].groupby(keys, as_index=False)[["token_overlap", "overlap_cosine"]].mean()
    table = table[table["method"] != PERMUTED].merge(perm, on=keys, how="left", suffixes=("", "_perm"))
    both = lambda first, second: f"{fmt(first, 2)} / {fmt(second, 2)}"  # noqa: E731 (fmt writes NaN as --)
    pairs = lambda first, second: zip(table[first], table[second])  # noqa: E731 (two columns side by side)
    rows = pd.DataFrame({
        "model": [f"\\texttt{{{latex_escape(model)}}}" for model in table["model"]],
        "dataset": [latex_escape(dataset) for dataset in table["dataset"]],
        "$N$": table["k"].astype(int).astype(str),
        "GD": [latex_escape(f"{optimizer}/{subset}") for optimizer, subset in pairs("optimizer", "subset")],
        "acc.\nICL / GD": [f"{fmt(100 * icl)} / {fmt(100 * gd)}"
                           for icl, gd in pairs("acc_full_icl", "acc_full_other")],
        "overlap@10\nGD / perm.": [both(gd, permuted) for gd, permuted in pairs("token_overlap", "token_overlap_perm")],
        "overlap cos.\nGD / perm.": [both(gd, permuted)
                                     for gd, permuted in pairs("overlap_cosine", "overlap_cosine_perm")],
        "Rec2FTP\n($n$)": [f"{fmt(value, 2)} ({int(n_fixed)})"
                           for value, n_fixed in pairs("rec2ftp_full", "rec2ftp_full_n")],
        "KL\nICL / GD": [both(icl, gd) for icl, gd in pairs("label_kl_icl", "label_kl_other")],
        "shift\ncos.": [fmt(value, 2) for value in table["shift_cosine"]],
    })
    return _model_table(rows, "tab:compare", "llllrrrrr", COMPARE_CAPTION)


def _model_table(rows: pd.DataFrame, label: str, align: str, caption: str) -> str:
    """A booktabs table of cells already in LaTeX, grouped by model: the layout of both paper tables here."""
    return booktabs_table(rows, escape=False, label=label, align=align, group="model", caption=caption)


def _gd(examples: pd.DataFrame) -> pd.DataFrame:
    return examples[examples["method"] != PERMUTED]


def summary_tex(examples: pd.DataFrame) -> str:
    """One generated sentence per model with at most three headline means (over all settings): the top-10
    overlap of ICL and GD and, where another demonstration order exists, ICL's overlap with itself reordered
    against GD's on those examples (Shen et al.'s reference); without that reference the overlap cosine and
    the shift cosine instead. The other metrics are per setting in tab:compare (and macros.json)."""
    sentences = []
    for model, group in _gd(examples).groupby("model", sort=True):
        text = (
            f"Averaged over all settings, the top-10 next-token sets of ICL and GD for "
            f"\\texttt{{{latex_escape(model)}}} share {fmt(group['token_overlap'].mean(), 2)} of their tokens"
        )
        gap = permutation_gap(examples[examples["model"] == model])
        if len(gap):
            text += (
                f"; where another demonstration order exists, ICL shares {fmt(gap['permuted'].mean(), 2)} of its "
                f"top-10 tokens with itself reordered against {fmt(gap['gd'].mean(), 2)} with GD (overlap cosine "
                f"and shift cosine per setting in Table~\\ref{{tab:compare}})."
            )
        else:
            text += (
                f", with overlap cosine {fmt(group['overlap_cosine'].mean(), 2)}, and the cosine between the two "
                f"methods' shifts of the label log-probabilities away from zero-shot is "
                f"{fmt(group['shift_cosine'].mean(), 2)} (per setting in Table~\\ref{{tab:compare}})."
            )
        sentences.append(text)
    return "% Generated by rule compare.\n" + "\n".join(sentences) + "\n"


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


CONTROL_METRICS = {
    "token_overlap": "overlap@10", "overlap_cosine": "overlap cos.", "shift_cosine": "shift cos.",
    "full_correct_icl": "acc.\\ ICL", "full_correct_other": "acc.\\ GD",
}


def control_table(examples: pd.DataFrame, controls: dict[str, str]) -> pd.DataFrame:
    """Trained model beside its untrained copy (`controls`: control name -> trained name) on the datasets the
    control ran: per (pair, dataset, side) the mean ICL-vs-GD metrics, the ICL-vs-ICL-permuted overlap and
    Rec2FTP over `same_queries`, so an "ICL ~ GD" number can be read against what random weights give."""
    rows = []
    for control, trained in sorted(controls.items()):
        datasets = sorted(examples.loc[examples["model"] == control, "dataset"].unique())
        for dataset in datasets:
            for side, model in (("trained", trained), ("untrained", control)):
                run = same_queries(examples[(examples["model"] == model) & (examples["dataset"] == dataset)])
                if run.empty:
                    continue
                gd, gap = _gd(run), permutation_gap(run)
                value, n_fixed = rec2ftp(gd["full_correct_zero"], gd["full_correct_other"], gd["full_correct_icl"])
                rows.append({"pair": trained, "model": model, "side": side, "dataset": dataset,
                             **{metric: gd[metric].mean() for metric in CONTROL_METRICS},
                             "overlap_perm": gap["permuted"].mean() if len(gap) else np.nan,
                             "rec2ftp_full": value, "rec2ftp_full_n": n_fixed})
    return pd.DataFrame(rows)


#: Caption of tab:control (`control_tex`).
CONTROL_CAPTION = (
    "The untrained control: each metric of Table~\\ref{tab:compare} for the trained model and for a copy "
    "with the same architecture and tokenizer but randomly initialised weights, on the same prompts, "
    "averaged over $N$ and test examples (for $N \\ge 2$ only those with the permuted reference, so every "
    "column averages over the same examples). Similarities that an untrained model reaches too say nothing "
    "about learned ICL~\\citep{deutch2024context}. Rule: \\texttt{compare\\_icl\\_gd}."
)


def control_tex(table: pd.DataFrame) -> str:
    """The control table for the paper (-- where a number is undefined)."""
    if table.empty:
        return ("% Generated by rule compare: no untrained control configured (config key control.models), "
                "or none of its fine-tuning runs converged.\n")
    rows = pd.DataFrame({
        "model": [f"\\texttt{{{latex_escape(pair)}}}" for pair in table["pair"]],
        "weights": table["side"],
        "dataset": [latex_escape(dataset) for dataset in table["dataset"]],
        **{label.replace(" ", "\n", 1): [fmt(value, 2) for value in table[metric]]
           for metric, label in CONTROL_METRICS.items() if not metric.startswith("full")},
        "overlap@10\nperm.": [fmt(value, 2) for value in table["overlap_perm"]],
        "acc.\nICL / GD": [f"{fmt(100 * icl, 1)} / {fmt(100 * gd, 1)}"
                           for icl, gd in zip(table["full_correct_icl"], table["full_correct_other"])],
        "Rec2FTP\n($n$)": [f"{fmt(value, 2)} ({int(n_fixed)})"
                           for value, n_fixed in zip(table["rec2ftp_full"], table["rec2ftp_full_n"])],
    })
    parts = []
    for pair, group in table.groupby("pair", sort=True):
        side = group.set_index("side")
        if {"trained", "untrained"} <= set(side.index):
            trained, untrained = (_one_row(side.loc[name]) for name in ("trained", "untrained"))
            parts.append(  # two numbers a sentence; ICL's own reordering and the shift cosine are in the table
                f"for \\texttt{{{latex_escape(pair)}}} the top-10 overlap of ICL and GD is "
                f"{fmt(trained['token_overlap'], 2)} with the trained weights and {fmt(untrained['token_overlap'], 2)} "
                f"with random ones (ICL against its own reordering and the cosine of the two shifts from zero-shot in "
                f"Table~\\ref{{tab:control}})."
            )
    datasets = ", ".join(f"\\texttt{{{latex_escape(dataset)}}}" for dataset in sorted(table["dataset"].unique()))
    text = ("% Generated by rule compare.\n" + "\n".join(f"On {datasets}, {part}" for part in parts) + "\n\n"
            if parts else "")
    return text + _model_table(rows, "tab:control", "llrrrrlr", CONTROL_CAPTION)


def _one_row(rows: pd.Series | pd.DataFrame) -> pd.Series:
    """One side of a pair as a row: the mean over datasets where the side has several."""
    return rows.mean(numeric_only=True) if isinstance(rows, pd.DataFrame) else rows


def control_macros(table: pd.DataFrame) -> dict[str, str]:
    """Per pair and side, the mean over the control datasets of the headline overlap numbers."""
    out = {}
    for (pair, side), g in table.groupby(["pair", "side"], sort=True):
        tag = "Untrained" if side == "untrained" else "Trained"
        out[macro_name(f"ControlOverlap{tag}", pair)] = fmt(g["token_overlap"].mean(), 2)
        out[macro_name(f"ControlOverlapCos{tag}", pair)] = fmt(g["overlap_cosine"].mean(), 2)
        out[macro_name(f"ControlShiftCos{tag}", pair)] = fmt(g["shift_cosine"].mean(), 2)
        out[macro_name(f"ControlOverlapPerm{tag}", pair)] = fmt(g["overlap_perm"].mean(), 2)
    if len(table):
        out["ControlDatasets"] = ", ".join(latex_escape(d) for d in sorted(table["dataset"].unique()))
    return out

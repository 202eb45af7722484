"""Figures, tables and sentences for the label-relationship study (Kossen, Gal & Rainforth 2023).

The claims table shows, per model and dataset, the three gaps the paper argues from (its Figs. 2-6):
default vs random labels (labels matter), agreement with flipped labels late vs early (flips are
learned) and D->F vs F->D at equal counts of default and flipped labels (recency).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from iclgd.core import figures
from iclgd.core.paper import booktabs_table, fmt, fmt_ci, latex_escape

#: (claim, contrast, metric, condition or None) rows that make the claims table, with a readable name.
HEADLINE = [
    ("labels_matter", "default - random", "loglik", None, "log-lik.: default $-$ random labels"),
    ("labels_matter", "default - random", "entropy", None, "entropy: default $-$ random labels"),
    ("labels_matter", "default - random", "correct", None, "accuracy: default $-$ random labels"),
    ("flip_learned", "last - position 1", "agree_presented", "flipped", "agreement with flipped labels: late $-$ first"),
    ("flip_learned", "default correct - flipped", "agree_presented", "flipped", "default acc.\\ $-$ flipped agreement (late)"),
    # `correct` is scored against the true (= default) labels, so this is agreement with the default
    # mapping after equal numbers of default and flipped labels; recency predicts it is negative.
    ("recency", "D->F - F->D", "correct", "default_to_flipped", "recency: D$\\to$F $-$ F$\\to$D (agreement with default)"),
]


def headline_rows(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims table's rows, in HEADLINE order, with a `what` column."""
    parts = []
    for claim, contrast, metric, condition, what in HEADLINE:
        sel = (claims["claim"] == claim) & (claims["contrast"] == contrast) & (claims["metric"] == metric)
        if condition is not None:
            sel &= claims["condition"] == condition
        parts.append(claims[sel].assign(what=what))
    return pd.concat(parts, ignore_index=True) if parts else claims.iloc[:0]


#: Short column headers of the claims table (HEADLINE's `what` -> header), stacked on two lines.
SHORT = {
    "log-lik.: default $-$ random labels": "log-lik.\ndef. $-$ rand.",
    "entropy: default $-$ random labels": "entropy\ndef. $-$ rand.",
    "accuracy: default $-$ random labels": "accuracy\ndef. $-$ rand.",
    "agreement with flipped labels: late $-$ first": "flip agreement\nlate $-$ first",
    "default acc.\\ $-$ flipped agreement (late)": "def. acc. $-$\nflip agr. (late)",
    "recency: D$\\to$F $-$ F$\\to$D (agreement with default)": "recency\nD$\\to$F $-$ F$\\to$D",
}


def _dataset_cell(name: str, width: int = 12) -> str:
    """A long dataset name on one line per underscore-separated part (financial_phrasebank pushed the
    table 33 pt past the margin at config/paper.yaml's scale)."""
    parts = latex_escape(name).split("\\_")
    return "\\_\n".join(parts) if len(name) > width else latex_escape(name)


def claims_table_tex(claims: pd.DataFrame) -> str:
    """One row per model / dataset (grouped by model), one column per gap of HEADLINE, each an estimate over
    its CI: grows downwards with more runs instead of sideways."""
    rows = headline_rows(claims)
    rows = rows.assign(cell=[fmt_ci(v, lo, hi, 3, stack=True) for v, lo, hi in zip(rows["value"], rows["lo"], rows["hi"])])
    wide = rows.pivot_table(index=["model", "dataset"], columns="what", values="cell", aggfunc="first", sort=True)
    order = [what for *_, what in HEADLINE if what in wide.columns]
    wide = wide[order].rename(columns=SHORT).reset_index()
    wide["model"] = ["\\texttt{" + latex_escape(m) + "}" for m in wide["model"]]
    wide["dataset"] = [_dataset_cell(d) for d in wide["dataset"]]
    return booktabs_table(
        wide.fillna("--"),
        caption=(
            "Label-relationship gaps (mean over random contexts, 95\\% bootstrap CI over contexts): default $-$ "
            "random labels in the true label's log-likelihood (nats), the label entropy and accuracy; agreement "
            "with flipped labels at the last positions $-$ at position 1; default accuracy $-$ flipped agreement "
            "at the last positions; and D$\\to$F $-$ F$\\to$D in agreement with the default labels after equal "
            "numbers of both (recency predicts $< 0$). Accuracy and agreement are fractions. "
            "Rules: \\texttt{label\\_curves}, \\texttt{label\\_paper\\_numbers}."
        ),
        label="tab:label_claims", align="l" + "r" * (wide.shape[1] - 2), escape=False, group="model",
        size="\\footnotesize",
    )


def _first(group: pd.DataFrame, prefix: str) -> pd.Series | None:
    hits = group[group["what"].str.startswith(prefix)]
    return hits.iloc[0] if len(hits) else None


def _excludes_zero(row: pd.Series) -> str:
    """Whether a gap's CI excludes zero, in words (the bounds themselves are in tab:label_claims)."""
    if pd.isna(row["lo"]) or pd.isna(row["hi"]):
        return "CI undefined"
    return "CI excludes zero" if row["lo"] > 0 or row["hi"] < 0 else "CI includes zero"


def claims_summary(claims: pd.DataFrame) -> str:
    """One generated sentence per (model, dataset): each claim's gap (at most three numbers) and, in words,
    whether its CI excludes zero; the CI bounds are in tab:label_claims."""
    rows = headline_rows(claims)
    sentences = []
    for (model, dataset), group in rows.groupby(["model", "dataset"], sort=True):
        parts = []
        ll = _first(group, "log-lik.: default")
        if ll is not None:
            parts.append("default labels raise the true label's log-likelihood over random labels by "
                         f"{fmt(ll['value'], 3)} ({_excludes_zero(ll)})")
        fl = _first(group, "agreement with flipped")
        if fl is not None:
            parts.append(f"agreement with flipped labels grows by {fmt(fl['value'], 3)} ({_excludes_zero(fl)}) "
                         "from the first to the last positions")
        rc = _first(group, "recency")
        if rc is not None:
            parts.append("at equal counts of default and flipped labels, D$\\to$F minus F$\\to$D agreement with the default "
                         f"labels is {fmt(rc['value'], 3)} ({_excludes_zero(rc)})")
        if parts:
            sentences.append(f"For \\texttt{{{latex_escape(model)}}} on \\texttt{{{latex_escape(dataset)}}}, "
                             + "; ".join(parts) + "; Table~\\ref{tab:label_claims} gives the intervals.")
    return "% Generated by rule labels_paper_numbers.\n" + "\n".join(sentences) + "\n"


def claims_macros(claims: pd.DataFrame, n_demos: int, repetitions: int) -> dict[str, str]:
    return {"CurvesNDemos": str(n_demos), "CurvesRepetitions": str(repetitions),
            "CurvesNRuns": str(claims[["model", "dataset"]].drop_duplicates().shape[0])}


#: The learning-curve figure's columns: (title, conditions drawn, metric); at most three banded series each.
#: All three plot label log-likelihoods (nats), the smooth per-context quantities whose gaps the claims
#: table tests, rather than 0/1 accuracy. `loglik` is the log-probability of the true (default) label,
#: `loglik_presented` that of the label shown in context. The other conditions (words, alternating)
#: stay in the tables.
COLUMNS = [
    ("labels matter\n(log-lik. of the true label)", ["default", "random", "flipped"], "loglik"),
    ("flipped labels are learned\n(log-lik. of the shown label)", ["default", "flipped", "instructed_flipped"],
     "loglik_presented"),
    ("flip halfway, recency\n(log-lik. of the true label)", ["default_to_flipped", "flipped_to_default"], "loglik"),
]
NAMES = {"default": "default", "random": "random", "flipped": "flipped", "instructed_flipped": "flipped + instruction",
         "default_to_flipped": "D$\\to$F (flip halfway)", "flipped_to_default": "F$\\to$D"}
#: Runs (model x dataset) drawn on one page; further runs continue on the next page.
RUNS_PER_PAGE = 4
#: Per-position keys of the per-context table (`curves.CURVE_COLUMNS`).
POSITION_KEYS = ["model", "dataset", "condition", "position"]


def position_means(table: pd.DataFrame, metrics: list[str], ci: float = 0.95) -> pd.DataFrame:
    """Per (model, dataset, condition, position): each metric's mean over random contexts with a t-interval.

    Contexts (repetitions) are the independent units, as in the claims' paired tests, so the interval is
    over per-context values at each position; one context gets a zero-width interval. Columns follow
    `curves.aggregate` (`{metric}`, `{metric}_lo`, `{metric}_hi`, `n`), so the figure draws either.
    """
    groups = table.groupby(POSITION_KEYS, sort=True)
    out = groups.size().rename("n").reset_index()
    n = out["n"].to_numpy(dtype=float)
    t = np.where(n > 1, scipy_stats.t.ppf(0.5 + ci / 2, np.maximum(n - 1, 1)), 0.0)
    for metric in metrics:
        mean = groups[metric].mean().to_numpy(dtype=float)
        sd = np.nan_to_num(groups[metric].std(ddof=1).to_numpy(dtype=float))
        half = t * sd / np.sqrt(n)
        out[metric], out[f"{metric}_lo"], out[f"{metric}_hi"] = mean, mean - half, mean + half
    return out


def figure_metrics() -> list[str]:
    """The metrics COLUMNS draws, in order."""
    return list(dict.fromkeys(metric for *_, metric in COLUMNS))


def plot_learning_curves(curves: pd.DataFrame, pdf: Path, png: Path | None = None) -> None:
    """One row per model x dataset, one column per claim (COLUMNS), against the position in the context.

    `curves`: per-position means and interval bounds (`position_means` of the per-context table); the raw
    positions are drawn, unsmoothed. Four runs to a page.
    """
    runs = curves[["model", "dataset"]].drop_duplicates().sort_values(["model", "dataset"]).to_records(index=False)
    palette = figures.colours([c for _, conds, _ in COLUMNS for c in conds])
    pages = [_curves_page(curves, page, palette) for page in figures.chunks(list(runs), RUNS_PER_PAGE)]
    figures.save(pages, pdf, png)


def _curves_page(curves: pd.DataFrame, runs: list, palette: dict):
    """Log-likelihoods share a y-axis within each run (row) so the columns compare; their scale differs by run."""
    fig, axes = figures.grid(len(runs), len(COLUMNS), 1.45, extra_height=0.55, sharex=True, sharey="row")
    for row, (model, dataset) in zip(axes, runs):
        part = curves[(curves["model"] == model) & (curves["dataset"] == dataset)]
        for col, (ax, (title, conditions, metric)) in enumerate(zip(row, COLUMNS)):
            for cond in [c for c in conditions if c in set(part["condition"])]:
                line = part[part["condition"] == cond].sort_values("position")
                ax.plot(line["position"], line[metric], color=palette[cond], ls=figures.LINESTYLES.get(cond, "-"),
                        label=NAMES[cond])
                ax.fill_between(line["position"], line[f"{metric}_lo"], line[f"{metric}_hi"], color=palette[cond],
                                alpha=0.2, lw=0)
            ax.set_ylabel(f"{model}\n{dataset}" if col == 0 else "")
            if ax is axes[0][col]:
                ax.set_title(title)
            if ax is axes[-1][col]:
                ax.set_xlabel("position $i$ (after $i-1$ demos)")
    handles = {label: h for row in axes for ax in row for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside upper center", ncols=min(6, len(handles)), frameon=False)
    return fig

"""Figures, tables and sentences for the label-relationship study (Kossen, Gal & Rainforth 2023).

The claims table shows, per model and dataset, the three gaps the paper argues from (its Figs. 2-6):
default vs random labels (labels matter), agreement with flipped labels late vs early (flips are
learned) and D->F vs F->D at equal counts of default and flipped labels (recency).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from iclgd.core import figures
from iclgd.core.paper import booktabs_table, fmt_ci, latex_escape

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


def claims_summary(claims: pd.DataFrame) -> str:
    """One generated sentence per (model, dataset) saying whether each claim's CI excludes zero."""
    rows = headline_rows(claims)
    sentences = []
    for (model, dataset), group in rows.groupby(["model", "dataset"], sort=True):
        parts = []
        ll = _first(group, "log-lik.: default")
        if ll is not None:
            parts.append("default labels raise the true label's log-likelihood over random labels by "
                         + fmt_ci(ll["value"], ll["lo"], ll["hi"], 3))
        fl = _first(group, "agreement with flipped")
        if fl is not None:
            parts.append(f"agreement with flipped labels grows by {fmt_ci(fl['value'], fl['lo'], fl['hi'], 3)} "
                         "from the first to the last positions")
        rc = _first(group, "recency")
        if rc is not None:
            parts.append("at equal counts of default and flipped labels, D$\\to$F minus F$\\to$D agreement with the default "
                         f"labels is {fmt_ci(rc['value'], rc['lo'], rc['hi'], 3)}")
        if parts:
            sentences.append(f"For \\texttt{{{latex_escape(model)}}} on \\texttt{{{latex_escape(dataset)}}}, " + "; ".join(parts) + ".")
    return "% Generated by rule label_paper_numbers.\n" + "\n".join(sentences) + "\n"


def claims_macros(claims: pd.DataFrame, n_demos: int, repetitions: int) -> dict[str, str]:
    return {"CurvesNDemos": str(n_demos), "CurvesRepetitions": str(repetitions),
            "CurvesNRuns": str(claims[["model", "dataset"]].drop_duplicates().shape[0])}


#: The learning-curve figure's columns: (title, conditions drawn, metric); at most three banded series each.
#: `correct` is scored against the true labels, `agree_presented` against the labels shown in context.
#: The other conditions (words, alternating) stay in the tables.
COLUMNS = [
    ("labels matter\n(accuracy, true labels)", ["default", "random"], "correct"),
    ("flipped labels are learned\n(agreement with shown labels)", ["default", "flipped", "instructed_flipped"],
     "agree_presented"),
    ("flip halfway, recency\n(accuracy, true labels)", ["default_to_flipped", "flipped_to_default"], "correct"),
]
NAMES = {"default": "default", "random": "random", "flipped": "flipped", "instructed_flipped": "flipped + instruction",
         "default_to_flipped": "D$\\to$F (flip halfway)", "flipped_to_default": "F$\\to$D"}
#: Runs (model x dataset) drawn on one page; further runs continue on the next page.
RUNS_PER_PAGE = 4


def plot_learning_curves(curves: pd.DataFrame, pdf: Path, png: Path | None = None) -> None:
    """One row per model x dataset, one column per claim (COLUMNS), against the position in the context;
    bands: 95% bootstrap CIs over random contexts. Four runs to a page."""
    runs = curves[["model", "dataset"]].drop_duplicates().sort_values(["model", "dataset"]).to_records(index=False)
    palette = figures.colours([c for _, conds, _ in COLUMNS for c in conds])
    pages = [_curves_page(curves, page, palette) for page in figures.chunks(list(runs), RUNS_PER_PAGE)]
    figures.save(pages, pdf, png)


def _curves_page(curves: pd.DataFrame, runs: list, palette: dict):
    fig, axes = figures.grid(len(runs), len(COLUMNS), 1.45, extra_height=0.55, sharex=True)
    for row, (model, dataset) in zip(axes, runs):
        part = curves[(curves["model"] == model) & (curves["dataset"] == dataset)]
        for col, (ax, (title, conditions, metric)) in enumerate(zip(row, COLUMNS)):
            for cond in [c for c in conditions if c in set(part["condition"])]:
                line = part[part["condition"] == cond].sort_values("position")
                ax.plot(line["position"], line[metric], color=palette[cond], ls=figures.LINESTYLES.get(cond, "-"),
                        label=NAMES[cond])
                ax.fill_between(line["position"], line[f"{metric}_lo"], line[f"{metric}_hi"], color=palette[cond],
                                alpha=0.2, lw=0)
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"{model}\n{dataset}" if col == 0 else "")
            if ax is axes[0][col]:
                ax.set_title(title)
            if ax is axes[-1][col]:
                ax.set_xlabel("position $i$ (after $i-1$ demos)")
    handles = {label: h for row in axes for ax in row for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside upper center", ncols=min(6, len(handles)), frameon=False)
    return fig

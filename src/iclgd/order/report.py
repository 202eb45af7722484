"""Figure, macros and generated sentences of the order experiment (`order`).

Shen et al.'s claim is that ICL's output spreads across demonstration orderings more than any
fine-tuning variant's, throughout training, and full-batch GD's not at all. The report states
that per run from the spread tables: in the sentences ICL's spread against the largest fine-tuning
spread at any scored epoch (whether ICL's exceeds every optimizer's at every scored epoch), and in
the table (`order_table`, tab:order) the ICL spread with its CI and each optimizer's at the last epoch.
"""

from __future__ import annotations

from typing import Any

from matplotlib.ticker import MaxNLocator
import pandas as pd

from iclgd.core import figures
from iclgd.core.paper import booktabs_table, fmt, latex_escape, macro_name, sci

#: Statistics in the figure and the text: label probabilities and the full vocabulary.
SHOWN = {"label": "label probabilities", "vocab": "full vocabulary"}
RUN = ["model", "dataset"]


def _ft(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["method"] == "finetune"]


def _icl(table: pd.DataFrame) -> pd.DataFrame:
    icl = table[table["method"] == "icl"]
    if icl.empty:
        raise ValueError("spread table has no ICL rows")
    return icl


def last_epoch(table: pd.DataFrame) -> pd.DataFrame:
    """Fine-tuning rows at each run's last scored epoch, plus the ICL rows (epoch 0)."""
    ft = _ft(table)
    last = ft.groupby(RUN)["epoch"].transform("max")
    return pd.concat([_icl(table), ft[ft["epoch"] == last]], ignore_index=True)


def icl_above(table: pd.DataFrame) -> pd.DataFrame:
    """Per run and statistic: is ICL's mean spread above every optimizer's at every scored epoch?

    Also the largest fine-tuning spread and the ratio ICL / that maximum (inf when it is 0).
    """
    rows = []
    for (model, dataset, stat), g in table.groupby([*RUN, "statistic"], sort=True):
        icl = float(_icl(g)["spread"].iloc[0])
        ft_max = float(_ft(g)["spread"].max()) if len(_ft(g)) else float("nan")
        rows.append({"model": model, "dataset": dataset, "statistic": stat, "icl": icl, "ft_max": ft_max,
                     "icl_above_all": bool(icl > ft_max), "ratio": icl / ft_max if ft_max > 0 else float("inf")})
    return pd.DataFrame(rows)


#: Runs (model x dataset) drawn on one page of the figure; further runs continue on the next page.
RUNS_PER_PAGE = 4


def plot_spread(table: pd.DataFrame, pdf, png=None) -> None:
    """Spread vs epoch per optimizer (bands: bootstrap CIs over queries), ICL as a horizontal band.

    One row of panels per (model, dataset), four to a page, one column per statistic in SHOWN. Full-batch
    GD is exactly zero by construction, so it is drawn without a band: at most three banded series a panel.
    """
    runs = table[RUN].drop_duplicates().sort_values(RUN).to_records(index=False).tolist()
    optimizers = sorted(_ft(table)["optimizer"].unique())
    palette = figures.colours(["icl", *optimizers])
    figures.save([_spread_page(table, page, optimizers, palette) for page in figures.chunks(runs, RUNS_PER_PAGE)],
                 pdf, png)


def _spread_page(table: pd.DataFrame, runs: list, optimizers: list[str], palette: dict):
    fig, axes = figures.grid(len(runs), len(SHOWN), 1.7, extra_height=0.3)
    for row, (model, dataset) in zip(axes, runs):
        run = table[(table["model"] == model) & (table["dataset"] == dataset)]
        for ax, (stat, label) in zip(row, SHOWN.items()):
            sub = run[run["statistic"] == stat]
            icl = _icl(sub).iloc[0]
            ax.axhspan(icl["lo"], icl["hi"], color=palette["icl"], alpha=0.2, lw=0)
            ax.axhline(icl["spread"], color=palette["icl"], ls="--", label="ICL")
            for opt in optimizers:
                line = _ft(sub)[_ft(sub)["optimizer"] == opt].sort_values("epoch")
                ax.plot(line["epoch"], line["spread"], marker="o", color=palette[opt], label=NAMES[opt])
                if (line["hi"] > line["lo"]).any():
                    ax.fill_between(line["epoch"], line["lo"], line["hi"], color=palette[opt], alpha=0.2, lw=0)
            ax.set_title(f"{model} / {dataset}: {label}", pad=12)  # room for the y offset text (1e-6)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        row[0].set_ylabel("std across orderings")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside upper center", ncols=1 + len(optimizers),
               frameon=False)
    return fig


#: How optimizers are named in the text and the legend.
NAMES = {"gd": "GD", "sgd": "SGD", "adam": "Adam"}


def _value(stat: str, x: float) -> str:
    """Exact zeros (full-batch GD) as 0; spreads >= 0.01 with 3 decimals; smaller ones (vocabulary
    means are ~1/V) in scientific notation, so none rounds to a misleading 0.000."""
    if x == 0:
        return "0"
    return fmt(x, 3) if abs(x) >= 0.01 else sci(x, 1)


def order_macros(table: pd.DataFrame, cfg: dict[str, Any]) -> dict[str, str]:
    """Settings (Order<Key>) plus per run Order<Model><Dataset><Method><Statistic> at the last epoch."""
    out = {
        "OrderK": str(int(cfg["n_demos"])),
        "OrderOrderings": str(int(cfg["orderings"])),
        "OrderEpochs": str(int(cfg["epochs"])),
        "OrderNQueries": str(int(table["n_queries"].max())),
        "OrderSubset": latex_escape(str(cfg["subset"])),
        "OrderNRuns": str(len(table[RUN].drop_duplicates())),
    }
    for opt in ("gd", "sgd", "adam"):  # every name defined, so the text compiles whichever are run
        used = opt in cfg["optimizers"] and opt in cfg["lrs"]
        out[macro_name("order", "lr", opt)] = f"{float(cfg['lrs'][opt]):g}" if used else "--"
    for r in last_epoch(table).to_dict("records"):
        if r["statistic"] not in SHOWN:
            continue
        method = "icl" if r["method"] == "icl" else r["optimizer"]
        out[macro_name("order", r["model"], r["dataset"], method, r["statistic"])] = _value(r["statistic"], r["spread"])
    above = icl_above(table)
    for stat in SHOWN:
        sub = above[above["statistic"] == stat]
        out[macro_name("order", "icl above", stat)] = str(int(sub["icl_above_all"].sum()))
    return out


def order_table(table: pd.DataFrame) -> str:
    """One row per run and statistic (grouped by model): ICL's spread with its CI, each optimizer's at the last
    scored epoch, the largest fine-tuning spread at any scored epoch, and whether ICL's is above it: the
    numbers `order_summary` leaves out of its sentences."""
    last = last_epoch(table)
    above = icl_above(table).set_index([*RUN, "statistic"])
    optimizers = [o for o in NAMES if o in set(_ft(table)["optimizer"])]
    optimizers += sorted(set(_ft(table)["optimizer"]) - set(optimizers))
    rows = []
    for (model, dataset, stat), run in last.groupby([*RUN, "statistic"], sort=True):
        if stat not in SHOWN:
            continue
        icl, ft = _icl(run).iloc[0], _ft(run).set_index("optimizer")["spread"]
        verdict = above.loc[(model, dataset, stat)]
        epoch = _ft(run)["epoch"].max()
        rows.append({
            "model": f"\\texttt{{{latex_escape(model)}}}",
            "dataset": f"\\texttt{{{latex_escape(dataset)}}}",
            "statistic": {"label": "label probs.", "vocab": "full vocab."}.get(stat, SHOWN[stat]),
            "ICL": f"{_value(stat, icl['spread'])}\n[{_value(stat, icl['lo'])}, {_value(stat, icl['hi'])}]",
            **{NAMES.get(o, latex_escape(o)): _value(stat, ft[o]) if o in ft.index else "--" for o in optimizers},
            "epoch": str(int(epoch)) if pd.notna(epoch) else "--",
            "FT max": _value(stat, verdict["ft_max"]) if pd.notna(verdict["ft_max"]) else "--",
            "ICL\nabove": "yes" if verdict["icl_above_all"] else "no",
        })
    frame = pd.DataFrame(rows)
    return booktabs_table(
        frame,
        caption=(
            "Spread of the output across demonstration orderings (standard deviation across orderings, averaged "
            "over queries; 95\\% bootstrap CI over queries for ICL) per run, on the label probabilities and on "
            "the full vocabulary: ICL, each fine-tuning optimizer after its last scored epoch (\\emph{epoch}), the "
            "largest fine-tuning spread at any scored epoch (\\emph{FT max}), and whether ICL's spread is above "
            "it. Full-batch GD is exactly zero by construction. Rule: \\texttt{order\\_paper\\_numbers}."
        ),
        label="tab:order", align="ll" + "r" * (frame.shape[1] - 4) + "c", group="model", escape=False,
        size="\\footnotesize", colsep="4pt",
    )


def order_summary(table: pd.DataFrame) -> str:
    """Generated sentences per run, one per statistic: ICL's spread against the largest fine-tuning spread at
    any scored epoch (at most three numbers a sentence); CIs and each optimizer's spread are in tab:order."""
    above = icl_above(table)
    sentences = []
    for (model, dataset), run in above.groupby(RUN, sort=True):
        run = run[run["statistic"].isin(list(SHOWN))].set_index("statistic")
        stats = [stat for stat in SHOWN if stat in run.index]
        for i, stat in enumerate(stats):
            r = run.loc[stat]
            head = (f"For \\texttt{{{latex_escape(model)}}} on \\texttt{{{latex_escape(dataset)}}}, on the {SHOWN[stat]}"
                    if i == 0 else f"On the {SHOWN[stat]}")
            sentences.append(
                f"{head}, ICL's output spreads across demonstration orderings by {_value(stat, r['icl'])}, "
                f"{'above' if r['icl_above_all'] else 'not above'} the largest spread of any fine-tuning variant at "
                f"any scored epoch, {_value(stat, r['ft_max'])}"
                + (" (each optimizer and ICL's CI in Table~\\ref{tab:order})." if i == len(stats) - 1 else ".")
            )
    return "% Generated by rule order_paper_numbers.\n" + "\n".join(sentences) + "\n"

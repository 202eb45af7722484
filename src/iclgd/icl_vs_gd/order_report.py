"""Figure, macros and generated sentences of the order experiment (`order`).

Shen et al.'s claim is that ICL's output spreads across demonstration orderings more than any
fine-tuning variant's, throughout training, and full-batch GD's not at all. The report states
that per run from the spread tables: the ICL spread with its CI, each optimizer's at the last
epoch, and whether ICL's exceeds every optimizer's at every scored epoch.
"""

from __future__ import annotations

from typing import Any

from matplotlib.ticker import MaxNLocator
import pandas as pd

from iclgd.core import figures
from iclgd.core.paper import fmt, latex_escape, macro_name, sci

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


def order_summary(table: pd.DataFrame) -> str:
    """One generated sentence per run: ICL vs each optimizer at the last epoch, both statistics."""
    last = last_epoch(table)
    above = icl_above(table).set_index([*RUN, "statistic"])
    sentences = []
    for (model, dataset), run in last.groupby(RUN, sort=True):
        parts = []
        for stat, label in SHOWN.items():
            sub = run[run["statistic"] == stat]
            icl = _icl(sub).iloc[0]
            ft = _ft(sub).sort_values("optimizer")
            epoch = int(ft["epoch"].max())
            others = ", ".join(
                f"{NAMES[r['optimizer']]} {_value(stat, r['spread'])}" for r in ft.to_dict("records")
            )
            verdict = "above" if above.loc[(model, dataset, stat), "icl_above_all"] else "not above"
            parts.append(
                f"on the {label}, ICL spreads by {_value(stat, icl['spread'])} "
                f"[{_value(stat, icl['lo'])}, {_value(stat, icl['hi'])}] against {others} after epoch {epoch}, "
                f"{verdict} every fine-tuning variant at every scored epoch"
            )
        sentences.append(f"For \\texttt{{{latex_escape(model)}}} on \\texttt{{{latex_escape(dataset)}}}, "
                         + "; ".join(parts) + ".")
    return "% Generated by rule order_paper_numbers.\n" + "\n".join(sentences) + "\n"

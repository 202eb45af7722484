"""The model-size panel of the label-relationship study: each of Kossen et al.'s headline effects
(`claims.KOSSEN`) with its 95% CI against the model's parameter count, one point per model and dataset.

The models differ in family and tuning as well as size, so colour and legend name both: a trend across
them is confounded with family and tuning and is no scaling law. A dataset keeps one small x-offset and
one marker in every panel, so a model run on fewer datasets (a skipped pair) just has fewer points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from iclgd.core import figures
from iclgd.labels.claims import KOSSEN, gap_rows

#: Columns of the points CSV (results/metrics/label_size.csv): every plotted point, traceable to a claims.csv row.
POINT_COLUMNS = ["model", "family", "tuning", "parameters", "dataset", "claim", "contrast", "metric", "effect",
                 "lo", "hi"]
#: Panel titles per (claim, contrast) of KOSSEN.
TITLES = {
    ("labels_matter", "default - random"): "labels matter: default $-$ random\n(log-lik. of the true label, nats)",
    ("flip_learned", "last - position 1"): "flipped labels learned: late $-$ first\n(agreement with flipped labels)",
    ("flip_learned", "default correct - flipped"): "preference kept: default acc. $-$\nflipped agreement (late)",
    ("recency", "D->F - F->D"): "recency: D$\\to$F $-$ F$\\to$D\n(agreement with default labels)",
}
#: One marker per dataset (in sorted order; cycled past the end).
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
#: Offset between neighbouring datasets and the widest spread of one model's points, in decades of the x axis.
OFFSET_DECADES, SPREAD_DECADES = 0.05, 0.2


def family_tuning(name: str, spec: dict[str, Any]) -> tuple[str, str]:
    """A registry entry's family (its name when unset, e.g. the test models) and tuning ('' when unset)."""
    return spec.get("family", name), spec.get("tuning", "")


def legend_name(family: str, tuning: str) -> str:
    """'Qwen2.5-Coder (code-instruct)': family and tuning travel together, never size alone."""
    return f"{family} ({tuning})" if tuning else family


def size_points(claims: pd.DataFrame, registry: dict[str, dict], parameters: dict[str, int]) -> pd.DataFrame:
    """The KOSSEN rows of the per-run claims (`value`, `lo`, `hi` as rule labels wrote them) with each model's
    family, tuning and parameter count, in KOSSEN order then by size, model and dataset."""
    parts = []
    for claim, contrast, metric, condition, *_ in KOSSEN:
        parts.append(claims[gap_rows(claims, claim, contrast, metric, condition)].assign(order=len(parts)))
    rows = pd.concat(parts, ignore_index=True)
    info = [(m, *family_tuning(m, registry.get(m, {})), int(parameters[m])) for m in rows["model"]]
    cols = ["model", "family", "tuning", "parameters"]
    rows[cols] = pd.DataFrame(info, index=rows.index, columns=cols)
    rows = rows.rename(columns={"value": "effect"}).sort_values(["order", "parameters", "model", "dataset"])
    return rows[POINT_COLUMNS].reset_index(drop=True)


def plot_size_panel(points: pd.DataFrame, pdf: Path, png: Path | None = None) -> None:
    """One panel per KOSSEN contrast: effect and 95% CI (error bars) against parameter count (log axis), colour
    per family and tuning, marker and a small x-offset per dataset, a line at zero."""
    points = points.assign(group=[legend_name(f, t) for f, t in zip(points["family"], points["tuning"])])
    groups = list(points.sort_values(["parameters", "group"])["group"].drop_duplicates())
    palette, datasets = figures.colours(groups), sorted(points["dataset"].unique())
    step = min(OFFSET_DECADES, SPREAD_DECADES / max(len(datasets) - 1, 1))
    shift = {d: 10 ** (step * (i - (len(datasets) - 1) / 2)) for i, d in enumerate(datasets)}
    marker = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(datasets)}
    fig, axes = figures.wrap(len(KOSSEN), 2, 1.75, extra_height=0.45)
    for ax, (claim, contrast, *_) in zip(axes, KOSSEN):
        part = points[points["contrast"] == contrast]
        for _, p in part.iterrows():
            err = np.nan_to_num([[p["effect"] - p["lo"]], [p["hi"] - p["effect"]]]).clip(min=0)
            ax.errorbar(p["parameters"] * shift[p["dataset"]], p["effect"], yerr=err, fmt=marker[p["dataset"]],
                        color=palette[p["group"]], capsize=2, elinewidth=1, markersize=4)
        ax.axhline(0, color="0.25", lw=0.9, zorder=1)
        if part.empty:  # e.g. config/ladder.yaml runs no flip_halfway: say so rather than leave a blank panel
            ax.text(0.5, 0.5, "not run in this configuration", transform=ax.transAxes, ha="center", va="center",
                    color="0.35")
        _size_axis(ax, points["parameters"])
        ax.set_title(TITLES.get((claim, contrast), contrast))
        ax.set_ylabel("effect (95% CI)")
    fig.legend(handles=[Line2D([], [], color=palette[g], lw=2, label=g) for g in groups], loc="outside lower center",
               ncols=min(3, len(groups)), frameon=False)
    fig.legend(handles=[Line2D([], [], color="0.3", ls="", marker=marker[d], label=d) for d in datasets],
               loc="outside upper center", ncols=min(7, len(datasets)), frameon=False)
    figures.save(fig, pdf, png)


def _size_axis(ax, parameters: pd.Series) -> None:
    """Log x axis ticked at the models' own parameter counts (135M, 1.54B), padded so offsets stay inside."""
    counts = sorted(set(int(p) for p in parameters))
    ax.set_xscale("log")
    if counts:
        ax.set_xlim(counts[0] / 1.6, counts[-1] * 1.6)
    ax.set_xticks(counts, [_short_count(c) for c in counts])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("parameters")


def _short_count(n: int) -> str:
    """135M, 1.54B: three significant digits at most."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


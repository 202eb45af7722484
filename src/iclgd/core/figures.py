"""Figures, made once for print: every figure is drawn at the paper's text width and placed at its natural
size (`\\includegraphics` without scaling), so the font size set here is the size the reader sees.

`grid` makes the canvas, `colours` gives every method, condition and model one colour across all figures,
and `save` refuses a figure wider than the text, taller than a page or with text below `MIN_FONT_PT`.
PDFs carry no creation date so identical results give identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.text import Text  # noqa: E402

PDF_METADATA = {"CreationDate": None, "Creator": "iclgd", "Producer": "iclgd"}

#: The paper's \textwidth in inches (letter paper, 1 in margins; paper/main.tex) and the tallest figure
#: that leaves room for a caption on a 9 in text block.
TEXT_WIDTH = 6.5
MAX_HEIGHT = 7.6
#: Text size in points at print size (the body is 11 pt); nothing in a figure may be smaller than MIN_FONT_PT.
FONT_PT = 8.0
MIN_FONT_PT = 7.0

_RC = {
    "font.size": FONT_PT, "axes.titlesize": FONT_PT, "axes.labelsize": FONT_PT, "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT, "legend.fontsize": MIN_FONT_PT, "legend.title_fontsize": FONT_PT,
    "figure.titlesize": FONT_PT, "lines.linewidth": 1.2, "lines.markersize": 3.0, "pdf.fonttype": 42,
}

_PALETTE = sns.color_palette("colorblind", 10)
#: One colour per method, label condition and model, the same in every figure (a reader compares figures).
COLOURS = {
    # methods
    "icl": _PALETTE[0], "gd": _PALETTE[1], "sgd": _PALETTE[2], "adam": _PALETTE[4], "ft": _PALETTE[1],
    "zero-shot": _PALETTE[7], "baseline": _PALETTE[7],
    # label conditions (Kossen et al.): default labels share ICL's colour
    "default": _PALETTE[0], "random": _PALETTE[7], "flipped": _PALETTE[3], "words": _PALETTE[8],
    "default_to_flipped": _PALETTE[4], "flipped_to_default": _PALETTE[2], "alternating": _PALETTE[9],
    "instructed_flipped": _PALETTE[3],  # a variant of flipped: its colour, dashed (LINESTYLES)
    # models
    "smollm2-135m": _PALETTE[0], "gemma3-270m": _PALETTE[3], "llama-7b": _PALETTE[2], "tiny-llama": _PALETTE[4],
    "smollm2-135m-untrained": _PALETTE[7],
}

#: Variants drawn in their parent's colour with another line style.
LINESTYLES = {"instructed_flipped": "--"}


def colours(names: Iterable[str]) -> dict[str, tuple]:
    """Each name's fixed colour; names without one get the palette's unused colours in the given order."""
    names = list(dict.fromkeys(names))
    spare = [c for c in _PALETTE if c not in {COLOURS[n] for n in names if n in COLOURS}] or _PALETTE
    out, i = {}, 0
    for name in names:
        if name in COLOURS:
            out[name] = COLOURS[name]
        else:
            out[name], i = spare[i % len(spare)], i + 1
    return out


def grid(nrows: int, ncols: int, panel_height: float, *, extra_height: float = 0.0, width: float = TEXT_WIDTH,
         **kwargs) -> tuple[plt.Figure, np.ndarray]:
    """A figure of nrows x ncols panels at the text width, laid out by matplotlib's constrained layout so
    labels never spill outside it; `axes` is always 2-D. Extra keyword arguments go to `plt.subplots`."""
    sns.set_theme(style="whitegrid", context="paper", rc=_RC)
    height = nrows * panel_height + extra_height
    if height > MAX_HEIGHT:
        raise ValueError(f"a figure of {nrows} rows x {panel_height} in is {height:.1f} in tall, more than a page "
                         f"holds ({MAX_HEIGHT} in): split it")
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained", **kwargs)
    return fig, axes


def wrap(n: int, ncols: int, panel_height: float, **kwargs) -> tuple[plt.Figure, list]:
    """n panels in rows of at most ncols (small multiples); the unused cells of the last row are hidden."""
    ncols = max(1, min(ncols, n))
    fig, axes = grid(-(-n // ncols), ncols, panel_height, **kwargs)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def too_small_text(fig: plt.Figure, min_pt: float = MIN_FONT_PT) -> list[str]:
    """Visible text set below `min_pt` (drawn first, so tick labels exist)."""
    fig.canvas.draw()
    return [f"{t.get_text()!r} at {t.get_fontsize():g} pt" for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < min_pt - 1e-9]


def _problems(fig: plt.Figure) -> list[str]:
    width, height = fig.get_size_inches()
    small = too_small_text(fig)
    return ([f"{width:.2f} in wide (text width {TEXT_WIDTH} in)"] if width > TEXT_WIDTH + 1e-6 else []) + \
        ([f"{height:.2f} in tall (at most {MAX_HEIGHT} in)"] if height > MAX_HEIGHT + 1e-6 else []) + \
        ([f"text below {MIN_FONT_PT} pt: {', '.join(small[:5])}"] if small else [])


def save(fig: plt.Figure | list[plt.Figure], pdf: Path, png: Path | None = None) -> None:
    """Write the PDF (and optionally a PNG preview of its first page) deterministically, at exactly the
    figure's size, after checking that it fits the text block and that no text is smaller than MIN_FONT_PT.

    A list of figures becomes one multi-page PDF: a figure with more runs than a page holds is continued
    on further pages (the paper places them with `\\runsfigure`, paper/iclgd.sty)."""
    figs = fig if isinstance(fig, list) else [fig]
    problems = [f"page {i + 1}: {p}" if len(figs) > 1 else p for i, f in enumerate(figs) for p in _problems(f)]
    if problems:
        for f in figs:
            plt.close(f)
        raise ValueError(f"figure {Path(pdf).name} would not be readable in print: " + "; ".join(problems))
    with PdfPages(pdf, metadata=PDF_METADATA) as pages:
        for f in figs:
            pages.savefig(f)
    if png is not None:
        figs[0].savefig(png, dpi=150, metadata={"Software": None})
    for f in figs:
        plt.close(f)


def chunks(items: list, size: int) -> list[list]:
    """Consecutive pieces of at most `size` items (the runs drawn on one page of a figure)."""
    return [items[i:i + size] for i in range(0, len(items), size)] or [[]]


#: Dataset panels of the ICL-accuracy figure per page (four to a row); more continue on the next page.
DATASETS_PER_PAGE = 12


def plot_accuracy_vs_k(acc: pd.DataFrame, pdf: Path, png: Path | None = None) -> None:
    """Label-restricted ICL accuracy against k, one panel per dataset (four to a row, twelve to a page), 95%
    bootstrap CIs as bands."""
    data = acc[acc["method"] == "icl"].sort_values(["dataset", "model", "k"])
    palette = colours(sorted(data["model"].unique()))
    pages = chunks(sorted(data["dataset"].unique()), DATASETS_PER_PAGE)
    save([_accuracy_page(data, datasets, palette) for datasets in pages], pdf, png)


def _accuracy_page(data: pd.DataFrame, datasets: list[str], palette: dict) -> plt.Figure:
    fig, axes = wrap(len(datasets), 4, 1.9)
    for ax, dataset in zip(axes, datasets):
        sub = data[data["dataset"] == dataset]
        for model, line in sub.groupby("model", sort=True):
            ax.plot(line["k"], line["acc"], marker="o", label=model, color=palette[model])
            ax.fill_between(line["k"], line["acc_lo"], line["acc_hi"], alpha=0.2, color=palette[model], lw=0)
        ax.set_title(dataset)
        ax.set_xlabel("demonstrations $k$")
        ax.set_xscale("symlog", base=2, linthresh=1)
        ax.set_xticks(sorted(sub["k"].unique()))
        ax.set_xticklabels([str(k) for k in sorted(sub["k"].unique())])
    axes[0].set_ylabel("accuracy (%)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=len(palette), frameon=False)
    return fig

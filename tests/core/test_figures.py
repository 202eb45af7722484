"""Figures for print: text width, page height and font floor enforced by `figures.save`; one colour per
name across figures; the per-run figures continue on further pages instead of shrinking."""

from __future__ import annotations

import re
import shutil
import subprocess

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from iclgd.core import figures
from iclgd.kernel.attention import MASS_PARTS
from iclgd.kernel.report import plot_heads
from iclgd.labels.report import COLUMNS, RUNS_PER_PAGE, plot_learning_curves

needs_poppler = pytest.mark.skipif(shutil.which("pdfinfo") is None, reason="needs poppler-utils (make tex)")


def pdf_pages(pdf) -> list[tuple[float, float]]:
    """(width, height) in inches of every page, from pdfinfo."""
    out = subprocess.run(["pdfinfo", "-f", "1", "-l", "99", str(pdf)], capture_output=True, text=True, check=True).stdout
    return [(float(w) / 72, float(h) / 72) for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", out)]


def test_save_refuses_text_below_the_floor(tmp_path):
    fig, axes = figures.grid(1, 1, 2.0)
    axes[0, 0].set_title("tiny", fontsize=figures.MIN_FONT_PT - 1)
    with pytest.raises(ValueError, match="text below .*'tiny'"):
        figures.save(fig, tmp_path / "f.pdf")
    assert not (tmp_path / "f.pdf").exists()


def test_save_refuses_a_figure_wider_than_the_text(tmp_path):
    fig, _ = figures.grid(1, 2, 2.0, width=figures.TEXT_WIDTH + 1)
    with pytest.raises(ValueError, match="in wide"):
        figures.save(fig, tmp_path / "f.pdf")


def test_grid_refuses_more_rows_than_a_page_holds():
    with pytest.raises(ValueError, match="split it"):
        figures.grid(10, 2, 1.0)


def test_colours_are_fixed_per_name_and_distinct_for_new_names():
    first = figures.colours(["icl", "gd", "novel-model", "other-model"])
    again = figures.colours(["other-model", "gd", "icl"])
    assert first["icl"] == again["icl"] == figures.COLOURS["icl"] and first["gd"] == again["gd"]
    assert len({first[n] for n in first}) == 4


def _curves(n_runs: int) -> pd.DataFrame:
    rows = []
    conditions = sorted({c for _, conds, _ in COLUMNS for c in conds})
    for run in range(n_runs):
        for cond in conditions:
            for pos in range(1, 6):
                value = 0.5 + 0.05 * pos * (cond == "default")
                rows.append({"model": f"m{run % 2}", "dataset": f"d{run}", "condition": cond, "position": pos,
                             **{f"{m}{s}": value + d for m in {metric for *_, metric in COLUMNS}
                                for s, d in (("", 0), ("_lo", -0.05), ("_hi", 0.05))}})
    return pd.DataFrame(rows)


@needs_poppler
def test_label_curves_continue_on_a_second_page_at_full_size(tmp_path):
    pdf, png = tmp_path / "curves.pdf", tmp_path / "curves.png"
    plot_learning_curves(_curves(RUNS_PER_PAGE + 1), pdf, png)
    pages = pdf_pages(pdf)
    assert len(pages) == 2 and png.stat().st_size > 0
    assert all(w <= figures.TEXT_WIDTH + 1e-3 and h <= figures.MAX_HEIGHT + 1e-3 for w, h in pages)
    assert pages[1][1] < pages[0][1]  # one run on the last page: a shorter page, not a smaller font


@needs_poppler
def test_kernel_heads_fit_the_text_width(tmp_path):
    rng = np.random.default_rng(0)
    heads = pd.DataFrame([{"model": m, "dataset": "sst2", "layer": layer, "head": head,
                           "eval_agreement": rng.uniform(), **{f"mass_{p}": 0.2 for p in MASS_PARTS}}
                          for m in ("a", "b", "c") for layer in range(3) for head in range(4)])
    summary = pd.DataFrame({"model": ["a", "b", "c"], "dataset": "sst2", "best_layer": 1, "best_head": 2})
    plot_heads(heads, summary, tmp_path / "k.pdf")
    assert [round(w, 2) for w, _ in pdf_pages(tmp_path / "k.pdf")] == [figures.TEXT_WIDTH]


def test_wrap_hides_the_unused_cells():
    fig, axes = figures.wrap(5, 4, 1.5)
    assert len(axes) == 5 and sum(ax.get_visible() for ax in fig.axes) == 5
    plt.close(fig)


@needs_poppler
def test_many_models_and_datasets_continue_on_further_pages(tmp_path):
    """config/paper.yaml's scale: more models (Dai) or datasets (ICL accuracy) than a page holds."""
    from iclgd.dai.report import MODEL_ROWS_PER_PAGE, MODELS_PER_ROW, plot_layers

    names = ["simaou", "random_simaou", "simam", "zsl_simam"]
    layers = pd.DataFrame([{"model": f"m{i}", "layer": layer, **{f"{n}{s}": 0.1 * layer + d for n in names
                                                                 for s, d in (("", 0), ("_lo", -0.05), ("_hi", 0.05))}}
                           for i in range(MODELS_PER_ROW * MODEL_ROWS_PER_PAGE + 1) for layer in range(4)])
    plot_layers(layers, tmp_path / "dai.pdf")
    acc = pd.DataFrame([{"method": "icl", "model": "m", "dataset": f"d{i:02d}", "k": k, "acc": 50.0, "acc_lo": 40.0,
                         "acc_hi": 60.0} for i in range(figures.DATASETS_PER_PAGE + 1) for k in (0, 1, 2)])
    figures.plot_accuracy_vs_k(acc, tmp_path / "acc.pdf")
    for name in ("dai.pdf", "acc.pdf"):
        pages = pdf_pages(tmp_path / name)
        assert len(pages) == 2 and all(w <= figures.TEXT_WIDTH + 1e-3 for w, _ in pages), (name, pages)

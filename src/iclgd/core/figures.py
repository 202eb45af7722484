"""Figures. PDFs carry no creation date so identical results give identical files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PDF_METADATA = {"CreationDate": None, "Creator": "iclgd", "Producer": "iclgd"}


def save(fig, pdf: Path, png: Path | None = None) -> None:
    """Write the PDF (and optionally a PNG preview) deterministically."""
    fig.savefig(pdf, metadata=PDF_METADATA, bbox_inches="tight")
    if png is not None:
        fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def plot_accuracy_vs_k(acc: pd.DataFrame, pdf: Path, png: Path | None = None) -> None:
    """Label-restricted ICL accuracy against k, one panel per dataset, 95% bootstrap CIs as bands."""
    data = acc[acc["method"] == "icl"].sort_values(["dataset", "model", "k"])
    datasets = sorted(data["dataset"].unique())
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.0 * len(datasets), 2.8), squeeze=False, sharey=False)
    palette = dict(zip(sorted(data["model"].unique()), sns.color_palette("colorblind")))
    for ax, dataset in zip(axes[0], datasets):
        sub = data[data["dataset"] == dataset]
        for model, line in sub.groupby("model", sort=True):
            ax.plot(line["k"], line["acc"], marker="o", label=model, color=palette[model])
            ax.fill_between(line["k"], line["acc_lo"], line["acc_hi"], alpha=0.2, color=palette[model])
        ax.set_title(dataset)
        ax.set_xlabel("demonstrations k")
        ax.set_xscale("symlog", base=2, linthresh=1)
        ax.set_xticks(sorted(sub["k"].unique()))
        ax.set_xticklabels([str(k) for k in sorted(sub["k"].unique())])
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(loc="best", fontsize=7)
    save(fig, pdf, png)

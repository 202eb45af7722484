"""Paper numbers, tables and figures for the hand-constructed "ICL = GD" weights (issue 8).

Shen et al. 2023 (Sec. 4 / Table 3 of the ICML version): the von Oswald construction is far sparser than
real attention weights, P = eta/N is undefined at N = 0, and the construction is exactly order-invariant;
von Oswald et al. 2023 (Fig. 2): an LSA layer trained on the ICL objective converges to one GD step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import pandas as pd

from iclgd.core.paper import booktabs_table, fmt, latex_escape, macro_name, sci
from iclgd.construction.sparsity import constructed_sparsity

#: The construction's blocks compared with a real model's projections.
PAIRS = {"q_proj": "W_Q", "k_proj": "W_K", "v_proj": "W_V"}


def constructed_fraction_below(d_model: int) -> pd.DataFrame:
    """Fraction of exact zeros (below every positive threshold) of W_Q, W_K, W_V at N_x = N_y = d_model."""
    table = constructed_sparsity(d_model).set_index("name")
    return pd.DataFrame(
        [{"proj": proj, "d_model": d_model, "fraction_below": table.loc[block, "sparsity"]} for proj, block in PAIRS.items()]
    )


def sparsity_summary(per_layer: Mapping[str, pd.DataFrame], hidden: Mapping[str, int]) -> pd.DataFrame:
    """Per model x projection x threshold: mean over layers (Shen et al.'s statistic) and the construction's value."""
    rows = []
    for model, table in per_layer.items():
        means = table.groupby(["proj", "threshold"], as_index=False)["fraction_below"].mean()
        built = constructed_fraction_below(hidden[model]).set_index("proj")["fraction_below"]
        for row in means.itertuples():
            rows.append(
                {"model": model, "d_model": hidden[model], "proj": row.proj, "threshold": row.threshold,
                 "measured": row.fraction_below, "constructed": built[row.proj]}
            )
    return pd.DataFrame(rows).sort_values(["model", "proj", "threshold"], ascending=[True, True, False], ignore_index=True)


def _below(threshold: float) -> str:
    """A threshold column header in math ('$<10^{-3}$'): a '<' in text mode prints as an inverted '!'."""
    exponent = math.log10(threshold)
    return f"$<10^{{{int(exponent)}}}$" if exponent == int(exponent) else f"$<$ {sci(threshold, 0)}"


def sparsity_table_tex(summary: pd.DataFrame) -> str:
    """Percent of |w| below each threshold (mean over layers) next to the constructed weights' exact zeros."""
    shown = summary.copy()
    shown["cell"] = [fmt(100 * v, 2) for v in shown["measured"]]
    wide = shown.pivot_table(index=["model", "proj", "constructed"], columns="threshold", values="cell", aggfunc="first")
    wide = wide[sorted(wide.columns, reverse=True)].reset_index()
    wide["constructed"] = [fmt(100 * v, 2) for v in wide["constructed"]]
    wide.columns = ["model", "weight", "constructed"] + [_below(t) for t in wide.columns[3:]]
    wide["model"] = [latex_escape(m) for m in wide["model"]]
    wide["weight"] = [f"\\texttt{{{latex_escape(w)}}}" for w in wide["weight"]]
    return booktabs_table(
        wide,
        caption=(
            "Sparsity (\\% of entries with $|w|$ below a threshold, mean over layers) of the models' attention "
            "projections against the exact zeros of the von Oswald et al.\\ construction at the model's width "
            "($N_x = N_y = d_\\text{model}$, $W_0$ dense). Rules: \\texttt{weight\\_sparsity}, "
            "\\texttt{construction\\_paper\\_numbers}."
        ),
        label="tab:sparsity",
        align="llr" + "r" * (wide.shape[1] - 3), escape=False,
    )


def lsa_macros(headline: Mapping[str, float]) -> dict[str, str]:
    """LSA-vs-GD convergence and order-sensitivity numbers."""
    return {
        "LsaPredCosine": fmt(headline["final_pred_cosine"], 6),
        "LsaPredRelLTwo": fmt(headline["final_pred_rel_l2"], 4),
        "LsaSensCosine": fmt(headline["final_sens_cosine"], 6),
        "LsaLoss": fmt(headline["lsa_loss"], 5),
        "LsaGdLoss": fmt(headline["gd_loss"], 5),
        "LsaGdLr": fmt(headline["gd_lr"], 3),
        "LsaConstructedPredLTwo": sci(headline["constructed_vs_gd_pred_l2"]),
        "LsaOrderStdConstructed": sci(headline["order_std_constructed"]),
        "LsaOrderStdTrained": sci(headline["order_std_trained"]),
    }


def sparsity_macros(summary: pd.DataFrame, threshold: float) -> dict[str, str]:
    """At one threshold: measured % below it per model x projection, and the construction's % zeros."""
    at = summary[summary["threshold"] == threshold]
    macros = {"SparsityThreshold": f"10^{{{round(math.log10(threshold))}}}"}
    for row in at.itertuples():
        macros[macro_name("sparsity", row.model, row.proj)] = fmt(100 * row.measured, 2)
        macros[macro_name("constructed", "sparsity", row.model, row.proj)] = fmt(100 * row.constructed, 2)
    top = at.loc[at["measured"].idxmax()]
    macros |= {
        "SparsityMaxMeasured": fmt(100 * top["measured"], 2),
        "SparsityMaxMeasuredWhere": f"{latex_escape(top['model'])} {latex_escape(top['proj'])}",
        "SparsityMinConstructed": fmt(100 * at["constructed"].min(), 2),
    }
    llama = constructed_sparsity(4096).set_index("name")["sparsity"]
    macros |= {"ConstructedSparsityLlamaQK": fmt(100 * llama["W_Q"], 3), "ConstructedSparsityLlamaV": fmt(100 * llama["W_V"], 2)}
    return macros


def plot_weight_sparsity(summary: pd.DataFrame, pdf: Path, png: Path | None = None) -> None:
    """Fraction below threshold vs threshold, per projection (three to a row): measured (lines, one colour per
    model) vs constructed at the model's width (dashed, same colour)."""
    from iclgd.core import figures

    projs = sorted(summary["proj"].unique())
    fig, axes = figures.wrap(len(projs), 3, 2.0, extra_height=0.3, sharey=True)
    palette = figures.colours(sorted(summary["model"].unique()))
    for ax, proj in zip(axes, projs):
        part = summary[summary["proj"] == proj]
        for model, group in part.groupby("model", sort=True):
            group = group.sort_values("threshold")
            ax.plot(group["threshold"], group["measured"], marker="o", color=palette[model], label=model)
            ax.axhline(group["constructed"].iloc[0], ls="--", lw=0.8, color=palette[model])
        ax.set(xscale="log", title=f"{proj} (dashed: construction)", xlabel="threshold",
               ylabel="fraction $|w|$ < threshold")
        ax.set_ylim(0, 1.02)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=len(palette), frameon=False)
    figures.save(fig, pdf, png)


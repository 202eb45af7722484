"""The kernel-regression study's paper outputs from the per-run summaries: the per-head figure, the
Table-2-style table with the phenomena table, the generated sentences and the macros.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iclgd.core import figures
from iclgd.core.paper import booktabs_table, fmt, fmt_ci, fmt_p, latex_escape, latex_text, macro_name, p_math
from iclgd.kernel.attention import MASS_PARTS


#: Runs (model x dataset) per row and rows per page of the head figure; further runs continue on the next page.
RUNS_PER_ROW, ROWS_PER_PAGE = 2, 3
_MASS_COLOURS = dict(zip(MASS_PARTS, ["tab:red", "tab:blue", "tab:gray", "tab:green", "tab:olive"]))


def plot_heads(heads: pd.DataFrame, summary: pd.DataFrame, pdf: Path, png: Path | None = None) -> None:
    """Per model x dataset, side by side: layer x head agreement with ICL on the evaluation part (best head
    boxed) and the layer-wise split of the last token's attention mass (mean over heads). Two runs to a row,
    three rows to a page."""
    runs = summary[["model", "dataset"]].drop_duplicates().sort_values(["model", "dataset"]).to_records(index=False)
    pages = [_heads_page(heads, summary, page) for page in figures.chunks(list(runs), RUNS_PER_ROW * ROWS_PER_PAGE)]
    figures.save(pages, pdf, png)


def _heads_page(heads: pd.DataFrame, summary: pd.DataFrame, runs: list):
    from matplotlib.patches import Rectangle

    nrows = -(-len(runs) // RUNS_PER_ROW)
    fig, axes = figures.grid(nrows, 2 * RUNS_PER_ROW, 1.9, extra_height=0.35)
    image = None
    for i, (model, dataset) in enumerate(runs):
        heat, bars = axes[i // RUNS_PER_ROW, 2 * (i % RUNS_PER_ROW)], axes[i // RUNS_PER_ROW, 2 * (i % RUNS_PER_ROW) + 1]
        part = heads[(heads["model"] == model) & (heads["dataset"] == dataset)]
        agreement = part.pivot(index="layer", columns="head", values="eval_agreement").sort_index()
        image = heat.imshow(agreement.to_numpy(), aspect="auto", origin="lower", vmin=0, vmax=1, cmap="viridis")
        row = summary[(summary["model"] == model) & (summary["dataset"] == dataset)].iloc[0]
        heat.add_patch(Rectangle((row["best_head"] - 0.5, row["best_layer"] - 0.5), 1, 1, fill=False, ec="red", lw=1.2))
        heat.set(title=f"{model} / {dataset}", xlabel="head", ylabel="layer")
        heat.grid(False)
        mass = part.groupby("layer")[[f"mass_{p}" for p in MASS_PARTS]].mean().sort_index()
        left = np.zeros(len(mass))
        for p in MASS_PARTS:
            bars.barh(mass.index, mass[f"mass_{p}"], left=left, color=_MASS_COLOURS[p], label=p, height=0.9)
            left += mass[f"mass_{p}"].to_numpy()
        bars.set(xlim=(0, 1), title="attention mass", xlabel="share (head mean)")
        bars.tick_params(labelleft=False)
    for ax in axes.flat[2 * len(runs):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="agreement with ICL (eval part)")
    handles, labels = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), frameon=False,
               title="last-token attention mass on:")
    return fig


def _tt(text: str) -> str:
    return f"\\texttt{{{latex_escape(text)}}}"


#: Caption of tab:kernel (Table 2 layout).
KERNEL_CAPTION = (
    "ICL as kernel regression (Table~2 layout of Han et al.). The best head (layer.head, from 0) is "
    "the one whose attention-weighted label vote agrees most with the ICL prediction on the selection "
    "part; all numbers are fractions on the disjoint evaluation part of $n$ queries (test split and "
    "extra training-split queries, never demonstrations): ICL accuracy, the head's agreement with the "
    "ICL prediction, the agreement of a constant vote for ICL's most frequent selection-part prediction, "
    "the one-sided exact McNemar $p$ of the head agreeing more often than that constant on the same held-out "
    "queries (paired), the head's accuracy, and kernel "
    "regression over the same demonstrations with all-MiniLM-L6-v2 embeddings and with the model's last "
    "hidden state (cosine kernel). Rules: \\texttt{kernel\\_regression}, \\texttt{kernel\\_paper\\_numbers}."
)
#: Caption of tab:kernel_phenomena (kNN-retrieved vs random demonstrations).
KNN_CAPTION = (
    "Retrieved demonstrations, a phenomenon kernel regression explains (Han et al.), on "
    "\\texttt{kernel.extras\\_datasets}: ICL accuracy on the $n$ held-out queries with random "
    "demonstrations (those of Table~\\ref{tab:kernel}) and with each query's $k$ most similar training "
    "rows (all-MiniLM-L6-v2 cosine, most similar last), the paired difference with a bootstrap 95\\% CI "
    "and McNemar's $p$, and the best head's agreement with ICL under both. "
    "Rules: \\texttt{kernel\\_regression}, \\texttt{kernel\\_paper\\_numbers}."
)
#: Caption of tab:kernel_symbols (label words vs symbols).
SYMBOLS_CAPTION = (
    "Label words replaced by meaningless symbols (one per class) in the same demonstrations and queries "
    "as Table~\\ref{tab:kernel_phenomena}: ICL accuracy over all queries under words and symbols, the "
    "paired difference (bootstrap 95\\% CI), McNemar's $p$, the held-out agreement under symbols of the "
    "head selected under words, and of the head selected afresh under symbols (layer.head: agreement). "
    "Kernel regression over label vectors does not care what the labels are called. "
    "Rules: \\texttt{kernel\\_regression}, \\texttt{kernel\\_paper\\_numbers}."
)


def kernel_table_tex(summary: pd.DataFrame) -> str:
    """Table 2 layout (rows model / dataset, evaluation-part fractions), then the phenomena table:
    kNN-retrieved vs random demonstrations and label words vs symbols, where they ran."""
    rows = summary.sort_values(["model", "dataset"])
    main = booktabs_table(_main_frame(rows), caption=KERNEL_CAPTION, label="tab:kernel", align="lrrcrrrrrr",
                          group="model", escape=False)
    ran = _extras_runs(rows)
    common = {
        "model": [_tt(model) if model != "(none)" else model for model in ran["model"]],
        "dataset": [_tt(dataset) if not dataset.startswith("(") else dataset for dataset in ran["dataset"]],
    }
    phenomena = booktabs_table(
        _knn_frame(ran, common), caption=KNN_CAPTION, label="tab:kernel_phenomena", align="lrrrrrrr", escape=False,
        group="model",
    ) + "\n" + booktabs_table(
        _symbols_frame(ran, common), caption=SYMBOLS_CAPTION, label="tab:kernel_symbols", align="llrrrrrr",
        escape=False, group="model",
    )
    return main + "\n" + phenomena


def _main_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The Table 2 cells: per run the held-out ICL accuracy, the best head against its constant baseline, and
    kernel regression."""
    return pd.DataFrame({
        "model": [_tt(model) for model in rows["model"]],
        "dataset": [_tt(dataset) for dataset in rows["dataset"]],
        "$n$": [str(int(n_eval)) for n_eval in rows["n_eval"]],
        "ICL\nacc.": [fmt(value, 3) for value in rows["icl_eval_acc"]],
        "best\nhead": [f"{int(layer)}.{int(head)}" for layer, head in zip(rows["best_layer"], rows["best_head"])],
        "agreement\nw.\\ ICL": [fmt(value, 3) for value in rows["eval_agreement"]],
        "constant": [fmt(value, 3) for value in rows["eval_const_agreement"]],
        "$p$": [fmt_p(value) for value in rows["eval_agreement_p"]],
        "rec.\nacc.": [fmt(value, 3) for value in rows["eval_accuracy"]],
        "KR\nMiniLM": [fmt(value, 3) for value in rows["minilm_kr_eval_acc"]],
        "KR\nhidden": [fmt(value, 3) for value in rows["hidden_kr_eval_acc"]],
    })


def _extras_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """The runs where kNN or symbols ran; if none did, one placeholder row, so that the phenomena tables
    (and their labels) exist and say why they are empty."""
    ran = rows[rows["knn_acc"].notna() | rows["sym_icl_acc"].notna()]
    if ran.empty:
        ran = rows.iloc[:1].assign(model="(none)", dataset="(kernel.extras\\_datasets)")
    return ran


def _knn_frame(ran: pd.DataFrame, common: dict[str, list[str]]) -> pd.DataFrame:
    """tab:kernel_phenomena cells: ICL and the best head with random vs kNN-retrieved demonstrations."""
    return pd.DataFrame({
        **common,
        "$n$": [fmt(value, 0) for value in ran["knn_n"]],
        "ICL\nrandom": [fmt(value, 3) for value in ran["random_acc"]],
        "ICL\nkNN": [fmt(value, 3) for value in ran["knn_acc"]],
        "kNN $-$ random": [fmt_ci(*diff_ci, signed=True)
                           for diff_ci in ran[["knn_diff", "knn_diff_lo", "knn_diff_hi"]].to_numpy()],
        "$p$": [fmt_p(value) for value in ran["knn_p"]],
        "head\nrandom": [fmt(value, 3) for value in ran["random_head_agreement"]],
        "head\nkNN": [fmt(value, 3) for value in ran["knn_head_agreement"]],
    })


def _symbols_frame(ran: pd.DataFrame, common: dict[str, list[str]]) -> pd.DataFrame:
    """tab:kernel_symbols cells: ICL with label words vs symbols, and the word- and symbol-selected heads."""
    return pd.DataFrame({
        **common,
        "symbols": [f"\\texttt{{{latex_text(symbols)}}}" if isinstance(symbols, str) and symbols else "--"
                    for symbols in ran["symbols"]],
        "ICL\nwords": [fmt(words_acc, 3) if pd.notna(symbols_acc) else "--"
                       for words_acc, symbols_acc in zip(ran["icl_acc"], ran["sym_icl_acc"])],
        "ICL\nsymbols": [fmt(value, 3) for value in ran["sym_icl_acc"]],
        "symbols $-$ words": [fmt_ci(*diff_ci, signed=True)
                              for diff_ci in ran[["sym_diff", "sym_diff_lo", "sym_diff_hi"]].to_numpy()],
        "$p$": [fmt_p(value) for value in ran["sym_p"]],
        "word\nhead": [fmt(value, 3) for value in ran["word_head_sym_eval_agreement"]],
        "symbol\nhead": [
            f"{int(layer)}.{int(head)}: {fmt(agreement, 3)}" if pd.notna(agreement) else "--"
            for layer, head, agreement in zip(ran["sym_best_layer"].fillna(-1), ran["sym_best_head"].fillna(-1),
                                              ran["sym_eval_agreement"])
        ],
    })


def kernel_head_table_tex(summary: pd.DataFrame) -> str:
    """The best head per run beside Table~2: its held-out agreement with ICL with the bootstrap CI, and where
    its last-token attention goes (label tokens, demonstration inputs): numbers `kernel_summary` leaves out."""
    rows = summary.sort_values(["model", "dataset"])
    frame = pd.DataFrame({
        "model": [_tt(m) for m in rows["model"]],
        "dataset": [_tt(d) for d in rows["dataset"]],
        "best\nhead": [f"{int(lay)}.{int(h)}" for lay, h in zip(rows["best_layer"], rows["best_head"])],
        "agreement w.\\ ICL\n[95\\% CI]": [fmt_ci(*v, 3) for v in
                                          rows[["eval_agreement", "eval_agreement_lo", "eval_agreement_hi"]].to_numpy()],
        "mass on\nlabels": [fmt(v, 3) for v in rows["best_head_label_mass"]],
        "mass on\ninputs": [fmt(v, 3) for v in rows["best_head_input_mass"]],
    })
    return booktabs_table(
        frame,
        caption=(
            "The best head of Table~\\ref{tab:kernel} (layer.head, from 0): its agreement with the ICL prediction "
            "on the held-out evaluation part with a 95\\% bootstrap CI over those queries, and the share of its "
            "last-token attention on the demonstrations' label tokens and on their inputs (mean over queries). "
            "Rules: \\texttt{kernel\\_regression}, \\texttt{kernel\\_paper\\_numbers}."
        ),
        label="tab:kernel_head", align="lcrrr", group="model", escape=False,
    )


def kernel_summary(summary: pd.DataFrame) -> str:
    """Generated sentences per (model, dataset), at most three numbers each: the best head's held-out
    agreement against the constant vote (exact McNemar, paired), its accuracy against ICL and MiniLM kernel
    regression, and the phenomena where run; the rest is in tab:kernel, tab:kernel_head,
    tab:kernel_phenomena and tab:kernel_symbols."""
    sentences = []
    rows = summary.sort_values(["model", "dataset"])
    for r in rows.to_dict("records"):
        sentences.append(
            f"For \\texttt{{{latex_escape(r['model'])}}} on \\texttt{{{latex_escape(r['dataset'])}}}, the best head "
            f"reproduces the ICL prediction on {fmt(r['eval_agreement'], 3)} of the held-out queries, against "
            f"{fmt(r['eval_const_agreement'], 3)} for a constant vote on the same queries (one-sided exact McNemar "
            f"{p_math(r['eval_agreement_p'])}; the head, its CI and attention mass in Table~\\ref{{tab:kernel_head}})."
        )
        sentences.append(
            f"Its vote is correct on {fmt(r['eval_accuracy'], 3)} of them, against ICL accuracy "
            f"{fmt(r['icl_eval_acc'], 3)} and MiniLM kernel regression accuracy {fmt(r['minilm_kr_eval_acc'], 3)} "
            f"(kernel regression on hidden states in Table~\\ref{{tab:kernel}})."
        )
        if pd.notna(r.get("knn_acc")):
            sentences.append(
                f"With each held-out query's nearest training rows as demonstrations ICL accuracy is "
                f"{fmt(r['knn_acc'], 3)} against {fmt(r['random_acc'], 3)} with random ones (McNemar "
                f"{p_math(r['knn_p'])}; the difference's CI and the head's agreement in "
                f"Table~\\ref{{tab:kernel_phenomena}})."
            )
        if pd.notna(r.get("sym_icl_acc")):
            sentences.append(
                f"With the symbols \\texttt{{{latex_text(r['symbols'])}}} in place of the label words ICL accuracy is "
                f"{fmt(r['sym_icl_acc'], 3)} against {fmt(r['icl_acc'], 3)} on all queries (McNemar "
                f"{p_math(r['sym_p'])}; the difference's CI and the heads' agreement in "
                f"Table~\\ref{{tab:kernel_symbols}})."
            )
    beats = int((rows["eval_accuracy"] > rows["minilm_kr_eval_acc"]).sum())
    sig = int((rows["eval_agreement_p"] < 0.05).sum())
    sentences.append(f"The best head's reconstruction is more accurate than MiniLM kernel regression in {beats} of "
                     f"{len(rows)} model--dataset runs.")
    sentences.append(f"Its held-out agreement beats the constant vote at $p < 0.05$ in {sig} of {len(rows)}.")
    return "% Generated by rule kernel_paper_numbers.\n" + "\n".join(sentences) + "\n"


def kernel_macros(summary: pd.DataFrame, cfg: dict[str, Any]) -> dict[str, str]:
    """Stage-level settings (from the validated `kernel` config block) plus per-run numbers
    (Kernel<Model><Dataset><Quantity>)."""
    out = {
        "KernelNDemos": str(int(cfg["n_demos"])),
        "KernelNPromptSets": str(int(cfg["n_prompt_sets"])),
        "KernelSelectPercent": fmt(100 * float(cfg["select_fraction"]), 0),
        "KernelLambda": f"{float(cfg['ridge_lambda']):g}",
        "KernelNRuns": str(len(summary)),
        "KernelNTrainQueries": str(int(cfg["n_train_queries"])),
        "KernelKnnPool": str(int(cfg["knn_pool"])),
        "KernelSymbols": ", ".join(f"\\texttt{{{latex_text(s)}}}" for s in cfg["symbols"]) or "--",
        "KernelExtrasDatasets": ", ".join(_tt(d) for d in cfg["extras_datasets"]) or "every dataset",
        "KernelNQueriesMin": str(int(summary["n_queries"].min())) if len(summary) else "--",
        "KernelNEvalMin": str(int(summary["n_eval"].min())) if len(summary) else "--",
    }
    for r in summary.to_dict("records"):
        base = ("kernel", r["model"], r["dataset"])
        out[macro_name(*base, "best head")] = f"{int(r['best_layer'])}.{int(r['best_head'])}"
        for key in ("icl_eval_acc", "eval_agreement", "eval_accuracy", "minilm_kr_eval_acc", "hidden_kr_eval_acc",
                    "eval_const_agreement", "knn_acc", "random_acc", "sym_icl_acc", "icl_acc"):
            out[macro_name(*base, key)] = fmt(r[key], 3)
        out[macro_name(*base, "n eval")] = str(int(r["n_eval"]))
        out[macro_name(*base, "eval agreement p")] = fmt_p(r["eval_agreement_p"])
        for key in ("knn_p", "sym_p"):
            out[macro_name(*base, key)] = fmt_p(r[key])
    return out

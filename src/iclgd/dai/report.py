"""Dai et al.'s metrics from the stored captures: per-query tables, the summary with bootstrap CIs, the
per-layer figure, the LaTeX table, generated sentences and macros.

Levels of the summary (`summarise`): every (model, dataset, k); each (model, dataset) pooled over k
(k = "all"); each model pooled over datasets and k (dataset = "all"). The bootstrap resamples query
instances (one test query under one prompt set); the same query appears under every k, so pooled CIs treat
those as independent and are somewhat narrow.

Rec2FTP is reported next to a reference Dai et al. do not give: the share of all zero-shot-wrong queries
that ICL gets right. If Rec2FTP is no higher, the examples fine-tuning fixes say nothing about ICL's.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iclgd.core.figures import COLOURS, chunks, grid, save
from iclgd.core.metrics import rec2ftp
from iclgd.core.paper import booktabs_table, fmt, fmt_ci, latex_escape, macro_name
from iclgd.core.stats import bootstrap_ci
from iclgd.dai import similarity
from iclgd.dai.capture import DaiError, capture_from
from iclgd.dai.run import DaiConfig

METRICS = ("simaou", "random_simaou", "simam", "zsl_simam")
#: Paired differences whose CIs say whether a metric beats its baseline.
GAINS = {"simaou_gain": ("simaou", "random_simaou"), "simam_gain": ("simam", "zsl_simam")}
ALL = "all"


def metric_seed(seed: int, model: str, dataset: str, k: int, demo_seed: int) -> list[int]:
    """Seed of the random-update baseline of one prompt set: fixed by config, different per prompt set."""
    return [int(seed), zlib.crc32(model.encode()), zlib.crc32(dataset.encode()), int(k), int(demo_seed)]


def query_layer_frame(arrays: Any, correct: pd.DataFrame, model: str, dataset: str, seed: int) -> pd.DataFrame:
    """One row per (k, seed, query, layer): the four metrics, plus each run's correctness on the query."""
    frames = []
    zs = capture_from(arrays, "zs")
    uids = np.asarray(arrays["uid"])
    for i, (k, demo_seed) in enumerate(zip(arrays["k"].tolist(), arrays["seed"].tolist())):
        metrics = similarity.query_metrics(zs, capture_from(arrays, "icl", i), capture_from(arrays, "ft", i),
                                           metric_seed(seed, model, dataset, k, demo_seed))
        n_q, n_layers = metrics["simaou"].shape
        frame = pd.DataFrame({
            "model": model, "dataset": dataset, "k": k, "seed": demo_seed,
            "uid": np.repeat(uids, n_layers), "layer": np.tile(np.arange(n_layers), n_q), "n_layers": n_layers,
            **{name: values.reshape(-1) for name, values in metrics.items()},
        })
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    flags = correct[["k", "seed", "uid", "zs_correct", "icl_correct", "ft_correct"]]
    merged = out.merge(flags.assign(uid=flags["uid"].astype(np.uint64)), on=["k", "seed", "uid"], how="left",
                       validate="many_to_one")
    if merged["zs_correct"].isna().any():
        raise DaiError(f"{model}/{dataset}: captured queries without correctness records")
    return merged


def query_frame(layers: pd.DataFrame) -> pd.DataFrame:
    """One row per query instance: every metric averaged over layers (NaN layers skipped)."""
    keys = ["model", "dataset", "k", "seed", "uid"]
    agg = {m: "mean" for m in METRICS} | {c: "first" for c in ("zs_correct", "icl_correct", "ft_correct", "n_layers")}
    out = layers.groupby(keys, sort=True).agg(agg).reset_index()
    for gain, (a, b) in GAINS.items():
        out[gain] = out[a] - out[b]
    return out


def _ci(values: pd.Series, n_boot: int, ci: float, seed: int) -> tuple[float, float, float]:
    values = values.dropna().to_numpy(dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    return bootstrap_ci(values, n_boot, ci, seed)


def _summary_row(part: pd.DataFrame, n_boot: int, ci: float, seed: int) -> dict[str, Any]:
    zs, ft, icl = (part[f"{c}_correct"].astype(bool).to_numpy() for c in ("zs", "ft", "icl"))
    rec, n_fixed = rec2ftp(zs, ft, icl)
    row: dict[str, Any] = {
        "n_queries": len(part), "n_layers": int(part["n_layers"].max()),
        "zs_acc": zs.mean(), "icl_acc": icl.mean(), "ft_acc": ft.mean(),
        "rec2ftp": rec, "rec2ftp_n": n_fixed,
        "icl_fix_rate": icl[~zs].mean() if (~zs).any() else float("nan"), "zs_wrong_n": int((~zs).sum()),
    }
    fixed = icl[~zs & ft]
    row["rec2ftp_lo"], row["rec2ftp_hi"] = (
        bootstrap_ci(fixed.astype(float), n_boot, ci, seed)[1:] if n_fixed else (float("nan"),) * 2
    )
    for name in (*METRICS, *GAINS):
        row[name], row[f"{name}_lo"], row[f"{name}_hi"] = _ci(part[name], n_boot, ci, seed)
    return row


def summarise(queries: pd.DataFrame, metrics_cfg: dict[str, Any]) -> pd.DataFrame:
    """Per (model, dataset, k), per (model, dataset) over k, per model over both: Rec2FTP and the similarities."""
    n_boot, ci, seed = int(metrics_cfg["n_boot"]), float(metrics_cfg["ci"]), int(metrics_cfg["seed"])
    rows = []
    levels = (["model", "dataset", "k"], ["model", "dataset"], ["model"])
    for keys in levels:
        for values, part in queries.groupby(keys, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            label = dict(zip(keys, values)) | {key: ALL for key in ("dataset", "k") if key not in keys}
            rows.append(label | _summary_row(part, n_boot, ci, seed))
    out = pd.DataFrame(rows)
    out["k"] = out["k"].astype(str)
    return out


def layer_summary(layers: pd.DataFrame, metrics_cfg: dict[str, Any]) -> pd.DataFrame:
    """Per (model, layer), pooled over datasets, k and queries: mean and bootstrap CI of each metric."""
    n_boot, ci, seed = int(metrics_cfg["n_boot"]), float(metrics_cfg["ci"]), int(metrics_cfg["seed"])
    rows = []
    for (model, layer), part in layers.groupby(["model", "layer"], sort=True):
        row: dict[str, Any] = {"model": model, "layer": layer, "n_layers": int(part["n_layers"].max()), "n": len(part)}
        for name in METRICS:
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = _ci(part[name], n_boot, ci, seed)
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Figure


#: Models per row of the layer figure and rows of models per page; further models continue on the next page.
MODELS_PER_ROW, MODEL_ROWS_PER_PAGE = 3, 2
_PAIRS = (("simaou", "SimAOU (ICL vs FT update)", "random_simaou", "random update"),
          ("simam", "SimAM (ICL vs FT)", "zsl_simam", "ZSL SimAM (ICL vs ZS)"))


def plot_layers(layers: pd.DataFrame, pdf: Path, png: Path | None = None) -> None:
    """Three models to a row, six to a page. Per model: SimAOU vs the random-update baseline per layer, and
    below it SimAM vs ZSL SimAM. Two banded series per panel."""
    models = list(dict.fromkeys(layers.sort_values("model")["model"]))
    pages = chunks(models, MODELS_PER_ROW * MODEL_ROWS_PER_PAGE)
    save([_layers_page(layers, page) for page in pages], pdf, png)


def _layers_page(layers: pd.DataFrame, models: list[str]):
    ncols = min(MODELS_PER_ROW, len(models))
    blocks = -(-len(models) // ncols)
    fig, axes = grid(2 * blocks, ncols, 1.6, extra_height=0.3, sharey="row")
    palette = {"main": COLOURS["icl"], "base": COLOURS["baseline"]}
    for i, model in enumerate(models):
        part = layers[layers["model"] == model].sort_values("layer")
        for row, (main, main_label, base, base_label) in enumerate(_PAIRS):
            ax = axes[2 * (i // ncols) + row, i % ncols]
            for name, label, style, colour in ((main, main_label, "-", palette["main"]),
                                               (base, base_label, "--", palette["base"])):
                ax.plot(part["layer"], part[name], style, marker="o", color=colour, label=label)
                ax.fill_between(part["layer"], part[f"{name}_lo"], part[f"{name}_hi"], alpha=0.2, color=colour, lw=0)
            ax.axhline(0.0, color="grey", lw=0.6)
            ax.set_xlabel("layer")
            ax.set_title(f"{model}: {'SimAOU' if row == 0 else 'SimAM'}")
            if i % ncols == 0:
                ax.set_ylabel("cosine")
    for i in range(len(models), blocks * ncols):  # empty cells of the last block
        for row in (0, 1):
            axes[2 * (i // ncols) + row, i % ncols].set_visible(False)
    handles = [h for row in (0, 1) for h in axes[row, 0].get_legend_handles_labels()[0]]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside upper center", ncols=4, frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------------------
# Paper


def _tt(text: str) -> str:
    return f"\\texttt{{{latex_escape(text)}}}"


def pooled(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows the paper shows: each (model, dataset) over k, and each model over everything."""
    keep = summary[summary["k"] == ALL].copy()
    keep["_order"] = (keep["dataset"] == ALL).astype(int)
    return keep.sort_values(["model", "_order", "dataset"]).drop(columns="_order")


def dai_table_tex(summary: pd.DataFrame) -> str:
    """Two tables (grouped by model, one row per dataset and an "all" row): accuracy and Rec2FTP (`tab:dai`),
    then the similarities SimAOU and SimAM against their baselines (`tab:dai_sim`)."""
    rows = pooled(summary)
    n_datasets = rows[rows["dataset"] != ALL].groupby("model")["dataset"].nunique()
    single = rows["model"].map(n_datasets).fillna(0) <= 1
    rows = rows[~((rows["dataset"] == ALL) & single)]  # a model's "all" row repeats its only dataset
    keys = {
        "model": [_tt(m) for m in rows["model"]],
        "dataset": [_tt(d) if d != ALL else "all" for d in rows["dataset"]],
        "$n$": [str(int(n)) for n in rows["n_queries"]],
    }
    accuracy = pd.DataFrame({
        **keys,
        "acc.\nZS / ICL / FT": [f"{fmt(a, 2)} / {fmt(b, 2)} / {fmt(c, 2)}"
                                for a, b, c in rows[["zs_acc", "icl_acc", "ft_acc"]].to_numpy()],
        "Rec2FTP (\\%)": [
            f"{fmt_ci(r, lo, hi, 0, scale=100)} ({int(n)})" if n else "undefined (0)"
            for r, lo, hi, n in rows[["rec2ftp", "rec2ftp_lo", "rec2ftp_hi", "rec2ftp_n"]].to_numpy()
        ],
        "ICL fixes (\\%)": [fmt(100 * v, 0) for v in rows["icl_fix_rate"]],
    })
    similarity = pd.DataFrame({
        **keys,
        "SimAOU": [fmt_ci(*v, 3) for v in rows[["simaou", "simaou_lo", "simaou_hi"]].to_numpy()],
        "random": [fmt(v, 3) for v in rows["random_simaou"]],
        "SimAM": [fmt_ci(*v, 3) for v in rows[["simam", "simam_lo", "simam_hi"]].to_numpy()],
        "ZSL SimAM": [fmt(v, 3) for v in rows["zsl_simam"]],
        "SimAM $-$ ZSL": [fmt_ci(*v, 3) for v in rows[["simam_gain", "simam_gain_lo", "simam_gain_hi"]].to_numpy()],
    })
    pooled_over = ("pooled over $k$ (and over datasets in the ``all'' rows); $n$ query instances (test query "
                   "$\\times$ prompt set), 95\\% bootstrap CIs over them")
    return booktabs_table(
        accuracy,
        caption=(
            f"Dai et al.'s ICL-vs-fine-tuning comparison, {pooled_over}. FT: the base "
            "model after SGD on \\texttt{k\\_proj}/\\texttt{v\\_proj} only, one step per demonstration in the "
            "prompt's order, scored zero-shot. Rec2FTP: of the queries zero-shot gets wrong and FT right (count in "
            "parentheses), the share ICL gets right; ICL fixes: the share of all zero-shot-wrong queries ICL gets "
            "right (the reference Rec2FTP should beat). Table~\\ref{tab:dai_sim} gives the similarities. "
            "Rules: \\texttt{dai\\_capture}, \\texttt{dai\\_metrics}, \\texttt{dai\\_paper\\_numbers}."
        ),
        label="tab:dai", align="lrcrr", group="model", escape=False,
    ) + "\n" + booktabs_table(
        similarity,
        caption=(
            f"Dai et al.'s similarities between ICL and FT (Table~\\ref{{tab:dai}}), {pooled_over}. SimAOU: cosine "
            "between ICL's and FT's updates of the normalised last-token attention output, averaged over layers; "
            "random: the same with a uniform $[0,1)$ vector as FT's update. SimAM: cosine between ICL's and FT's "
            "raw last-token attention scores over the query tokens, averaged over heads and layers; ZSL SimAM: ICL "
            "against the zero-shot base model. Rules: \\texttt{dai\\_capture}, \\texttt{dai\\_metrics}, "
            "\\texttt{dai\\_paper\\_numbers}."
        ),
        label="tab:dai_sim", align="lrrrrrr", group="model", escape=False, size="\\footnotesize", colsep="4pt",
    )


def dai_summary(summary: pd.DataFrame) -> str:
    """Generated sentences, at most three numbers each: per model over everything, Rec2FTP against ICL's fix
    rate and the two similarities against their baselines (CIs and counts in tab:dai and tab:dai_sim); then
    how many (model, dataset) rows beat each baseline."""
    sentences = []
    rows = pooled(summary)
    overall = rows[rows["dataset"] == ALL]
    for r in overall.to_dict("records"):
        model = f"\\texttt{{{latex_escape(r['model'])}}}"
        sentences.append(
            f"For {model}, Rec2FTP is {fmt(100 * r['rec2ftp'], 0)}\\% against {fmt(100 * r['icl_fix_rate'], 0)}\\% "
            f"of all zero-shot-wrong queries fixed by ICL (CI and counts in Table~\\ref{{tab:dai}})."
            if r["rec2ftp_n"] else
            f"For {model}, Rec2FTP is undefined (fine-tuning fixes no zero-shot-wrong query; Table~\\ref{{tab:dai}})."
        )
        sentences.append(
            f"Its SimAOU is {fmt(r['simaou'], 3)} against {fmt(r['random_simaou'], 3)} for a random update, and SimAM "
            f"minus ZSL SimAM is {fmt(r['simam_gain'], 3)} (CIs in Table~\\ref{{tab:dai_sim}})."
        )
    per = rows[rows["dataset"] != ALL]
    above = int((per["simaou_gain_lo"] > 0).sum())
    simam = int((per["simam_gain_lo"] > 0).sum())
    rec = per[per["rec2ftp_n"] > 0]
    beats = int((rec["rec2ftp"] > rec["icl_fix_rate"]).sum())
    sentences.append(
        f"Of the {len(per)} model and dataset runs, SimAOU's lower CI bound is above the random baseline in {above} "
        f"and the CI of SimAM minus ZSL SimAM lies above zero in {simam}."
    )
    sentences.append(f"Rec2FTP exceeds ICL's overall fix rate in {beats} of the {len(rec)} runs where it is defined.")
    return "% Generated by rule dai_paper_numbers.\n" + "\n".join(sentences) + "\n"


def dai_macros(summary: pd.DataFrame, cfg: dict[str, Any]) -> dict[str, str]:
    """Settings and the pooled numbers (Dai<Model>[<Dataset>]<Quantity>)."""
    settings = DaiConfig.from_dict(cfg)
    out = {
        "DaiLr": f"{settings.lr:g}",
        "DaiEpochs": str(settings.epochs),
        "DaiK": ", ".join(str(k) for k in settings.n_demos),
        "DaiNQueries": str(settings.n_queries) if settings.n_queries is not None else "all",
        "DaiDatasets": ", ".join(_tt(d) for d in cfg["datasets"]),
        "DaiNRuns": str(int((summary["k"] == ALL).sum() - (summary["dataset"] == ALL).sum())),
    }
    for r in pooled(summary).to_dict("records"):
        base = ("dai", r["model"]) if r["dataset"] == ALL else ("dai", r["model"], r["dataset"])
        out[macro_name(*base, "rec")] = fmt(100 * r["rec2ftp"], 0) if r["rec2ftp_n"] else "undefined"
        out[macro_name(*base, "rec n")] = str(int(r["rec2ftp_n"]))
        out[macro_name(*base, "icl fix")] = fmt(100 * r["icl_fix_rate"], 0)
        for key in (*METRICS, *GAINS):
            out[macro_name(*base, key)] = fmt(r[key], 3)
    return out

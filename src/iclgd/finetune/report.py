"""ICL vs fine-tuning on the same demonstrations: selected learning rates, tables, paper sentences.

Shen et al. 2023 (Table 1 of the ICML version) compare ICL with GD on the same N demonstrations;
here the fine-tuned model is the run that `finetune.select_lr` picks by dev label loss (dev split
drawn from the demonstration pool, never from the test set) among the learning rates whose run
*converged* (learned every demonstration). A setting where no learning rate converged is shown as
such ("n.c.") and is never compared: an under-trained GD says nothing about whether ICL behaves like
GD. `nc_icl_accuracy` shows ICL on those settings beside the compared ones, so a reader can judge
whether leaving them out flatters either side.
"""

from __future__ import annotations

import pandas as pd

from iclgd.core import training
from iclgd.finetune import run as finetune
from iclgd.core.metrics import accuracy_table
from iclgd.core.paper import booktabs_table, fmt, fmt_ci, latex_escape, macro_name


def selected_records(records: pd.DataFrame, dev_records: pd.DataFrame) -> pd.DataFrame:
    """Test records of the dev-selected converged run of every (model, dataset, k, optimizer, subset)."""
    chosen = finetune.select_lr(finetune.dev_scores(dev_records))[[*finetune.SELECT_BY, "lr"]]
    return records.merge(chosen, on=[*finetune.SELECT_BY, "lr"], how="inner")


def convergence(runs: pd.DataFrame, dev_records: pd.DataFrame) -> pd.DataFrame:
    """Per fine-tuned setting: lrs converged / diverged / out of epochs, and the selected run's epochs."""
    return finetune.convergence(runs, finetune.select_lr(finetune.dev_scores(dev_records)))


def convergence_counts(conv: pd.DataFrame) -> pd.DataFrame:
    """Per (model, optimizer, subset): settings, settings with a converged lr, and runs by status."""
    keys = ["model", "optimizer", "subset"]
    status = [f"n_{s}" for s in training.STATUSES]
    out = conv.groupby(keys, sort=True).agg(
        settings=("converged", "size"), compared=("converged", "sum"), runs=("n_lrs", "sum"),
        **{s: (s, "sum") for s in status}, median_epochs=("epochs", "median"), max_epochs=("epochs", "max"),
    )
    return out.reset_index()


def matched_icl(icl_records: pd.DataFrame, ft_records: pd.DataFrame) -> pd.DataFrame:
    """ICL records of the (model, dataset, k, seed) settings that have a fine-tuned twin, plus zero-shot."""
    keys = ["model", "dataset", "k", "seed"]
    twins = ft_records[keys].drop_duplicates()
    paired = icl_records.merge(twins, on=keys, how="inner")
    zero = icl_records[(icl_records["k"] == 0) & icl_records["model"].isin(twins["model"])]
    return pd.concat([zero, paired], ignore_index=True)


def comparison(icl_acc: pd.DataFrame, ft_acc: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, dataset, k): zero-shot, ICL and each fine-tuning variant's accuracy (%);
    NaN where that variant has no converged run (the setting is not compared)."""
    icl = icl_acc[icl_acc["method"] == "icl"]
    zero = icl[icl["k"] == 0].set_index(["model", "dataset"])["acc"].rename("zero_shot")
    base = icl[icl["k"] > 0][["model", "dataset", "k", "acc", "acc_lo", "acc_hi"]].rename(
        columns={"acc": "icl", "acc_lo": "icl_lo", "acc_hi": "icl_hi"}
    )
    ft = ft_acc.assign(variant=ft_acc["optimizer"] + "/" + ft_acc["subset"])
    if ft.empty:  # no run learned its demonstrations anywhere: ICL alone, every setting uncompared
        out = base
    else:
        wide = ft.pivot_table(index=["model", "dataset", "k"], columns="variant", values="acc").reset_index()
        out = base.merge(wide, on=["model", "dataset", "k"], how="left")
    return out.join(zero, on=["model", "dataset"]).sort_values(["model", "dataset", "k"], ignore_index=True)


#: Fine-tuning variants (optimizer/subset) shown side by side; with more (config/paper.yaml: 3 optimizers x 4
#: subsets) each variant gets its own row, so the table grows down a longtable instead of past the margin.
WIDE_VARIANTS = 4


def _setting_columns(table: pd.DataFrame) -> dict[str, list[str]]:
    return {
        "model": ["\\texttt{" + latex_escape(m) + "}" for m in table["model"]],
        "dataset": [latex_escape(d) for d in table["dataset"]],
        "$k$": table["k"].astype(str).tolist(),
        "zero-\nshot": [fmt(v) for v in table["zero_shot"]],
        "ICL": [fmt_ci(a, lo, hi, 1) for a, lo, hi in zip(table["icl"], table["icl_lo"], table["icl_hi"])],
    }


def comparison_table(table: pd.DataFrame) -> str:
    """ICL vs each fine-tuning variant per (model, dataset, k): one column per variant, or one row per variant
    when there are more than WIDE_VARIANTS."""
    variants = [c for c in table.columns if "/" in c]
    ft = lambda values: [fmt(x) if x == x else "n.c." for x in values]  # noqa: E731
    if len(variants) <= WIDE_VARIANTS:
        shown = pd.DataFrame({**_setting_columns(table), **{f"FT\n{latex_escape(v)}": ft(table[v]) for v in variants}})
    else:
        long = table.melt(id_vars=[c for c in table.columns if c not in variants], value_vars=variants,
                          var_name="variant", value_name="ft").sort_values(["model", "dataset", "k"], kind="stable")
        shown = pd.DataFrame({**_setting_columns(long), "FT variant": [latex_escape(v) for v in long["variant"]],
                              "FT": ft(long["ft"])})
    return booktabs_table(
        shown,
        caption=(
            "Accuracy (\\%, argmax over label tokens) of ICL and of the model fine-tuned on the same $k$ "
            "demonstrations (optimizer/parameter subset), trained until it has learned them (every label the "
            "full-vocabulary argmax, mean label loss below the target) and, among the learning rates that got "
            "there, selected by the lowest mean label loss on a class-balanced dev split from the demonstration "
            "pool; averaged over demonstration seeds. "
            "n.c.: no learning rate converged, the setting is not compared. Rules: \\texttt{finetune}, "
            "\\texttt{finetune\\_metrics}, \\texttt{finetune\\_paper\\_numbers}."
        ),
        label="tab:icl_vs_ft",
        align="lr" + "r" * (shown.shape[1] - 3), group="model", escape=False,
    )


def comparison_summary(table: pd.DataFrame, counts: pd.DataFrame) -> str:
    """Generated sentences per model and variant, at most three numbers each: of the settings fine-tuned
    (`convergence_counts`: every lr tried), how many were learned and compared; then the mean accuracy over
    the compared (dataset, k) settings, ICL vs FT (each setting, and so which side is ahead, in tab:icl_vs_ft).

    The counts come from the convergence table, not from `table`, whose ICL side may hold only the
    settings that have a fine-tuned twin (`matched_icl`) and would always read "Y of Y"."""
    sentences = []
    for row in counts.sort_values(["model", "optimizer", "subset"]).to_dict("records"):
        model, variant = row["model"], f"{row['optimizer']}/{row['subset']}"
        sentences.append(
            f"For \\texttt{{{latex_escape(model)}}}, fine-tuning ({latex_escape(variant)}) learned its "
            f"demonstrations in {int(row['compared'])} of the {int(row['settings'])} settings it was trained on "
            f"(dataset, $k$, demonstration seed; every learning rate tried)."
        )
        group = table[table["model"] == model]
        both = group[group[variant].notna()] if variant in group.columns else group.iloc[:0]
        if len(both):  # a second sentence, so neither states more than three numbers; per setting: tab:icl_vs_ft
            sentences.append(
                f"On the {len(both)} (dataset, $k$) settings compared, ICL averages {fmt(both['icl'].mean())}\\% "
                f"and fine-tuning {fmt(both[variant].mean())}\\% (each setting in Table~\\ref{{tab:icl_vs_ft}})."
            )
    return "% Generated by rule finetune_paper_numbers.\n" + "\n".join(sentences) + "\n"


def comparison_macros(table: pd.DataFrame) -> dict[str, str]:
    """AccFt<Model><Dataset>K<k><Optimizer><Subset> for every compared setting."""
    variants = [c for c in table.columns if "/" in c]
    macros = {"NFinetuneSettings": str(len(table))}
    for row in table.to_dict("records"):
        for variant in variants:
            value = row[variant]
            macros[macro_name("acc", "ft", row["model"], row["dataset"], "k", row["k"], variant)] = (
                fmt(value) if value == value else "n.c."
            )
    return macros


def convergence_macros(counts: pd.DataFrame) -> dict[str, str]:
    """FtConverged<Model><Optimizer><Subset> (settings with a converged lr), FtSettings..., FtDiverged...,
    FtMedianEpochs..., and over all models NFinetuneCompared / NFinetuneTotal."""
    out = {"NFinetuneCompared": str(int(counts["compared"].sum())), "NFinetuneTotal": str(int(counts["settings"].sum()))}
    for row in counts.to_dict("records"):
        key = (row["model"], row["optimizer"], row["subset"])
        out[macro_name("ft", "converged", *key)] = str(int(row["compared"]))
        out[macro_name("ft", "settings", *key)] = str(int(row["settings"]))
        out[macro_name("ft", "runs", *key)] = str(int(row["runs"]))
        out[macro_name("ft", "diverged", *key)] = str(int(row["n_diverged"]))
        out[macro_name("ft", "unconverged", *key)] = str(int(row["n_not_converged"]))
        out[macro_name("ft", "median", "epochs", *key)] = fmt(row["median_epochs"], 0) if row["compared"] else "--"
    return out


def convergence_table(counts: pd.DataFrame) -> str:
    """How the fine-tuning runs ended per model and variant (`convergence_counts`): the settings with a
    converged learning rate, the runs that converged, diverged or ran out of epochs, and the selected runs'
    median epochs: the counts `convergence_summary` leaves out of its sentences."""
    shown = pd.DataFrame({
        "model": ["\\texttt{" + latex_escape(m) + "}" for m in counts["model"]],
        "FT variant": [latex_escape(f"{o}/{s}") for o, s in zip(counts["optimizer"], counts["subset"])],
        "settings\nconverged": [f"{int(c)} / {int(n)}" for c, n in zip(counts["compared"], counts["settings"])],
        "runs": counts["runs"].astype(int).astype(str).tolist(),
        "runs\nconverged": counts["n_converged"].astype(int).astype(str).tolist(),
        "runs\ndiverged": counts["n_diverged"].astype(int).astype(str).tolist(),
        "out of\nepochs": counts["n_not_converged"].astype(int).astype(str).tolist(),
        "median\nepochs": [fmt(e, 0) if c else "--" for e, c in zip(counts["median_epochs"], counts["compared"])],
    })
    return booktabs_table(
        shown,
        caption=(
            "How fine-tuning ended, per model and variant (optimizer/parameter subset): the settings (dataset, "
            "$k$, demonstration seed) in which some learning rate converged, of those trained; the runs (one per "
            "setting and learning rate) that converged, diverged or ran out of epochs; and the median epochs of "
            "the selected converged runs. Rules: \\texttt{finetune}, \\texttt{finetune\\_metrics}, "
            "\\texttt{finetune\\_paper\\_numbers}."
        ),
        label="tab:ft_convergence", align="lrrrrrr", group="model", escape=False,
    )


def convergence_summary(counts: pd.DataFrame, grid: dict) -> str:
    """Generated sentences, at most three numbers each: the stopping rules, then per model and variant how
    many settings converged and in how many epochs (how the runs ended: `convergence_table`)."""
    sentences = [
        f"Fine-tuning trains until every demonstration's label is the full-vocabulary argmax and the mean label "
        f"loss is below {fmt(float(grid['target_loss']), 2)} nats, for at most {int(grid['max_epochs'])} epochs.",
        f"A run is diverged when its loss is not finite, exceeds {fmt(float(grid['blowup']), 1)} times its start, or "
        f"stays above its start for {int(grid['diverge_patience'])} epochs in a row; a run converges only after "
        f"at least one epoch of updates, and the learning rate is selected on the lowest mean dev label loss."
    ]
    for row in counts.to_dict("records"):
        median = f", in a median of {fmt(row['median_epochs'], 0)} epochs" if row["compared"] else ""
        sentences.append(
            f"For \\texttt{{{latex_escape(row['model'])}}} ({latex_escape(row['optimizer'] + '/' + row['subset'])}), "
            f"some learning rate converged in {int(row['compared'])} of {int(row['settings'])} settings{median} "
            f"(how its runs ended in Table~\\ref{{tab:ft_convergence}})."
        )
    return "% Generated by rule finetune_paper_numbers.\n" + "\n".join(sentences) + "\n"


def finetune_accuracy(
    records: pd.DataFrame, dev_records: pd.DataFrame, icl_records: pd.DataFrame, **boot
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(every converged run's accuracy, the selected run's, ICL's on the same seeds)."""
    every = accuracy_table(records, **boot)
    chosen = accuracy_table(selected_records(records, dev_records), **boot)
    icl = accuracy_table(matched_icl(icl_records, records), **boot)
    return every, chosen, icl


# ---------------------------------------------------------------- ICL on the settings left out

#: One fine-tuned setting: a prompt set (convergence table rows add the optimizer and subset).
PROMPT_SET = ["model", "dataset", "k", "seed", "order"]


def icl_setting_accuracy(icl_records: pd.DataFrame) -> pd.DataFrame:
    """ICL's label-restricted accuracy (%, argmax over the label tokens) per prompt set with k >= 1."""
    icl = icl_records[(icl_records["method"] == "icl") & (icl_records["k"] >= 1)]
    correct = 100.0 * (icl["pred_index"] == icl["label_index"]).astype(float)
    return icl.assign(acc=correct).groupby(PROMPT_SET, as_index=False, sort=True)["acc"].mean()


def nc_icl_accuracy(icl_records: pd.DataFrame, conv: pd.DataFrame) -> pd.DataFrame:
    """Per (model, optimizer, subset): ICL's mean accuracy over the settings that were compared and over
    those where no lr converged (n.c.), each setting weighted equally, with their counts. If ICL does
    much better or worse on the n.c. settings, leaving them out biases the ICL-vs-FT comparison."""
    acc = icl_setting_accuracy(icl_records)
    merged = conv[[*PROMPT_SET, "optimizer", "subset", "converged"]].merge(acc, on=PROMPT_SET, how="left")
    rows = []
    for (model, optimizer, subset), g in merged.groupby(["model", "optimizer", "subset"], sort=True):
        compared = g["converged"].astype(bool)
        rows.append({"model": model, "optimizer": optimizer, "subset": subset,
                     "n_compared": int(compared.sum()), "icl_compared": g.loc[compared, "acc"].mean(),
                     "n_nc": int((~compared).sum()), "icl_nc": g.loc[~compared, "acc"].mean()})
    return pd.DataFrame(rows, columns=["model", "optimizer", "subset", "n_compared", "icl_compared", "n_nc", "icl_nc"])


def nc_table(nc: pd.DataFrame) -> str:
    """ICL's accuracy on the compared and on the n.c. settings, per model and fine-tuning variant."""
    shown = pd.DataFrame({
        "model": ["\\texttt{" + latex_escape(m) + "}" for m in nc["model"]],
        "FT variant": [latex_escape(f"{o}/{s}") for o, s in zip(nc["optimizer"], nc["subset"])],
        "compared\n$n$": nc["n_compared"].astype(str).tolist(),
        "ICL acc.\ncompared": [fmt(v) for v in nc["icl_compared"]],
        "n.c.\n$n$": nc["n_nc"].astype(str).tolist(),
        "ICL acc.\nn.c.": [fmt(v) for v in nc["icl_nc"]],
    })
    return booktabs_table(
        shown,
        caption=(
            "ICL's accuracy (\\%, argmax over label tokens) on the settings (dataset, $k$, demonstration seed) "
            "that each fine-tuning variant learned and that are compared in Table~\\ref{tab:icl_vs_ft}, and on "
            "those where no learning rate converged (n.c.), each setting weighted equally; a large gap would "
            "mean that leaving the n.c. settings out biases the comparison. Rule: "
            "\\texttt{finetune\\_paper\\_numbers}."
        ),
        label="tab:ft_nc_icl", align="lrrrr", group="model", escape=False,
    )


def nc_macros(nc: pd.DataFrame) -> dict[str, str]:
    """IclAccCompared<Model><Optimizer><Subset>, IclAccNc... (-- without such settings) and FtNc... (count)."""
    out = {}
    for row in nc.to_dict("records"):
        key = (row["model"], row["optimizer"], row["subset"])
        out[macro_name("icl", "acc", "compared", *key)] = fmt(row["icl_compared"])
        out[macro_name("icl", "acc", "nc", *key)] = fmt(row["icl_nc"])
        out[macro_name("ft", "nc", *key)] = str(int(row["n_nc"]))
    return out


def nc_summary(nc: pd.DataFrame) -> str:
    """A generated sentence per model and variant that left settings out: ICL there vs on the compared ones
    (three numbers; the count of compared settings is in tab:ft_nc_icl)."""
    sentences = [
        f"Where fine-tuning ({latex_escape(row['optimizer'] + '/' + row['subset'])}) of "
        f"\\texttt{{{latex_escape(row['model'])}}} converged at no learning rate (n.c.: {int(row['n_nc'])} "
        f"setting{'s' if row['n_nc'] != 1 else ''}), ICL averages {fmt(row['icl_nc'])}\\%, against {fmt(row['icl_compared'])}\\% on the compared "
        f"ones (Table~\\ref{{tab:ft_nc_icl}})."
        for row in nc.to_dict("records") if row["n_nc"]
    ]
    return "% Generated by rule finetune_paper_numbers.\n" + "\n".join(sentences) + ("\n" if sentences else "")

"""Rule finetune_metrics: accuracy of every fine-tuning grid point, of the dev-selected lr, and of ICL
on the same demonstration seeds (the fair comparison)."""

import pandas as pd

from iclgd.finetune import report as finetune_report
from iclgd.core import logs

logs.to_file(snakemake.log[0])
cfg = snakemake.params.metrics
records = pd.concat([pd.read_parquet(p) for p in snakemake.input.records], ignore_index=True)
dev = pd.concat([pd.read_parquet(p) for p in snakemake.input.dev], ignore_index=True)
icl = pd.concat([pd.read_parquet(p) for p in snakemake.input.icl], ignore_index=True)
boot = {"n_boot": cfg["n_boot"], "ci": cfg["ci"], "seed": cfg["seed"]}
every, chosen, icl_matched = finetune_report.finetune_accuracy(records, dev, icl, **boot)
every.to_csv(snakemake.output.grid, index=False)
chosen.to_csv(snakemake.output.selected, index=False)
icl_matched.to_csv(snakemake.output.icl, index=False)
runs = pd.concat([pd.read_csv(p) for p in snakemake.input.runs], ignore_index=True)
convergence = finetune_report.convergence(runs, dev)
convergence.to_csv(snakemake.output.convergence, index=False)
finetune_report.convergence_counts(convergence).to_csv(snakemake.output.counts, index=False)

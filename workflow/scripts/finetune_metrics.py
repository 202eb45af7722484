"""Rule finetune_metrics: accuracy of every fine-tuning grid point and of the dev-selected lr."""

import pandas as pd

from iclgd import finetune_report, logs

logs.to_file(snakemake.log[0])
cfg = snakemake.params.metrics
records = pd.concat([pd.read_parquet(p) for p in snakemake.input.records], ignore_index=True)
dev = pd.concat([pd.read_parquet(p) for p in snakemake.input.dev], ignore_index=True)
every, chosen = finetune_report.finetune_accuracy(records, dev, n_boot=cfg["n_boot"], ci=cfg["ci"], seed=cfg["seed"])
every.to_csv(snakemake.output.grid, index=False)
chosen.to_csv(snakemake.output.selected, index=False)

"""Rule icl_metrics: accuracy per setting with bootstrap CIs, and per seed."""

import pandas as pd

from iclgd.core import logs, metrics

logs.to_file(snakemake.log[0])
cfg = snakemake.params.metrics
records = pd.concat([pd.read_parquet(p) for p in snakemake.input.records], ignore_index=True)
metrics.accuracy_table(records, cfg["n_boot"], cfg["ci"], cfg["seed"]).to_csv(snakemake.output.acc, index=False)
metrics.per_seed_accuracy(records).to_csv(snakemake.output.per_seed, index=False)

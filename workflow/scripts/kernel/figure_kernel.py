"""Rule figure_kernel: per-head agreement heatmaps and attention-mass split, per model and dataset."""

import pandas as pd

from iclgd.kernel import report
from iclgd.core import logs

logs.to_file(snakemake.log[0])
summary = pd.concat([pd.read_csv(p) for p in snakemake.input.summaries], ignore_index=True)
heads = pd.concat([pd.read_parquet(p) for p in snakemake.input.heads], ignore_index=True)
report.plot_heads(heads, summary, snakemake.output.pdf, snakemake.output.png)

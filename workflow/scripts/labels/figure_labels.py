"""Rule figure_labels: label log-likelihood curves under label conditions, per model and dataset.

The curves are recomputed from the per-context table (`table.parquet`, written by rule labels next
to each `curves.parquet` input) so that the bands are intervals over random contexts, the units the
claims' paired tests use.
"""

from pathlib import Path

import pandas as pd

from iclgd.core import logs
from iclgd.labels import report as curves_report

log = logs.to_file(snakemake.log[0])
tables = [pd.read_parquet(Path(p).with_name("table.parquet")) for p in snakemake.input.curves]
table = pd.concat(tables, ignore_index=True)
means = curves_report.position_means(table, curves_report.figure_metrics())
log.info("%d runs, %d-%d contexts per position", len(tables), means["n"].min(), means["n"].max())
curves_report.plot_learning_curves(means, snakemake.output.pdf, snakemake.output.png)

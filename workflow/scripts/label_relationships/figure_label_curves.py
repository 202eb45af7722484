"""Rule figure_label_curves: learning curves under label conditions, per model and dataset."""

import pandas as pd

from iclgd.label_relationships import curves_report
from iclgd.core import logs

logs.to_file(snakemake.log[0])
curves = pd.concat([pd.read_parquet(p) for p in snakemake.input.curves], ignore_index=True)
curves_report.plot_learning_curves(curves, snakemake.output.pdf, snakemake.output.png)

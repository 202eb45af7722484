"""Rule figure_icl_accuracy: accuracy against k, per dataset and model."""

import pandas as pd

from iclgd.core import figures, logs

logs.to_file(snakemake.log[0])
figures.plot_accuracy_vs_k(pd.read_csv(snakemake.input.acc), snakemake.output.pdf, snakemake.output.png)

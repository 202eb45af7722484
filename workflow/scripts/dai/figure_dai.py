"""Rule figure_dai: per-layer SimAOU vs a random update and SimAM vs zero-shot, one column per model."""

import pandas as pd

from iclgd.dai import report as dai_report
from iclgd.core import logs

logs.to_file(snakemake.log[0])
dai_report.plot_layers(pd.read_csv(snakemake.input.layers), snakemake.output.pdf, snakemake.output.png)

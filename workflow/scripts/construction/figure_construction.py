"""Rule figure_construction: LSA-vs-GD convergence and weight sparsity against the construction."""

import pandas as pd

from iclgd.construction import report as construction_report

from iclgd.construction import lsa
from iclgd.core import logs

logs.to_file(snakemake.log[0])
lsa.plot_lsa_convergence(pd.read_csv(snakemake.input.convergence), snakemake.output.lsa_pdf, snakemake.output.lsa_png)
summary = pd.read_csv(snakemake.input.sparsity)
construction_report.plot_weight_sparsity(summary, snakemake.output.sparsity_pdf, snakemake.output.sparsity_png)

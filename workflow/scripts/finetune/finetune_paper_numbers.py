"""Rule finetune_paper_numbers: the ICL vs fine-tuning table, convergence counts (and their table), ICL on
the settings left out (n.c.), sentences and macros."""

from pathlib import Path

import pandas as pd

from iclgd.finetune import report as finetune_report
from iclgd.core import logs, paper

logs.to_file(snakemake.log[0])
table = finetune_report.comparison(pd.read_csv(snakemake.input.icl), pd.read_csv(snakemake.input.selected))
counts = pd.read_csv(snakemake.input.counts)
icl_records = pd.concat([pd.read_parquet(p) for p in snakemake.input.icl_records], ignore_index=True)
nc = finetune_report.nc_icl_accuracy(icl_records, pd.read_csv(snakemake.input.convergence))
table.to_csv(snakemake.output.csv, index=False)
nc.to_csv(snakemake.output.nc_csv, index=False)
macros = (
    finetune_report.comparison_macros(table)
    | finetune_report.convergence_macros(counts)
    | finetune_report.nc_macros(nc)
)
paper.write_json(macros, snakemake.output.macros)
Path(snakemake.output.table).write_text(finetune_report.comparison_table(table))
Path(snakemake.output.nc_table).write_text(finetune_report.nc_table(nc))
Path(snakemake.output.convergence_table).write_text(finetune_report.convergence_table(counts))
summary = finetune_report.convergence_summary(counts, dict(snakemake.params.grid))
summary += finetune_report.comparison_summary(table, counts) + finetune_report.nc_summary(nc)
Path(snakemake.output.summary).write_text(summary)

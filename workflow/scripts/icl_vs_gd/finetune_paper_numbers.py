"""Rule finetune_paper_numbers: the ICL vs fine-tuning table, convergence counts, sentences and macros."""

from pathlib import Path

import pandas as pd

from iclgd.icl_vs_gd import finetune_report
from iclgd.core import logs, paper

logs.to_file(snakemake.log[0])
table = finetune_report.comparison(pd.read_csv(snakemake.input.icl), pd.read_csv(snakemake.input.selected))
counts = pd.read_csv(snakemake.input.counts)
table.to_csv(snakemake.output.csv, index=False)
macros = finetune_report.comparison_macros(table) | finetune_report.convergence_macros(counts)
paper.write_json(macros, snakemake.output.macros)
Path(snakemake.output.table).write_text(finetune_report.comparison_table(table))
summary = finetune_report.convergence_summary(counts, dict(snakemake.params.grid))
Path(snakemake.output.summary).write_text(summary + finetune_report.comparison_summary(table))

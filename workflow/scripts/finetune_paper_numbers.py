"""Rule finetune_paper_numbers: the ICL vs fine-tuning table, sentences and macros."""

from pathlib import Path

import pandas as pd

from iclgd import finetune_report, logs, paper

logs.to_file(snakemake.log[0])
table = finetune_report.comparison(pd.read_csv(snakemake.input.icl), pd.read_csv(snakemake.input.selected))
table.to_csv(snakemake.output.csv, index=False)
paper.write_json(finetune_report.comparison_macros(table), snakemake.output.macros)
Path(snakemake.output.table).write_text(finetune_report.comparison_table(table))
Path(snakemake.output.summary).write_text(finetune_report.comparison_summary(table))

"""Rule order_paper_numbers: the order experiment's macros, spread table and generated sentences."""

from pathlib import Path

import pandas as pd

from iclgd.core import logs, paper
from iclgd.order import report as order_report

logs.to_file(snakemake.log[0])
table = pd.concat([pd.read_csv(p) for p in snakemake.input.tables], ignore_index=True)
table.to_csv(snakemake.output.csv, index=False)
paper.write_json(order_report.order_macros(table, snakemake.params.order), snakemake.output.macros)
Path(snakemake.output.summary).write_text(order_report.order_summary(table))
Path(snakemake.output.table).write_text(order_report.order_table(table))

"""Rule kernel_paper_numbers: the Table-2-style kernel-regression table, the best-head table, sentences and
macros."""

from pathlib import Path

import pandas as pd

from iclgd.kernel import report
from iclgd.core import logs, paper

logs.to_file(snakemake.log[0])
summary = pd.concat([pd.read_csv(p) for p in snakemake.input.summaries], ignore_index=True)
summary.to_csv(snakemake.output.csv, index=False)
paper.write_json(report.kernel_macros(summary, snakemake.params.kernel), snakemake.output.macros)
Path(snakemake.output.table).write_text(report.kernel_table_tex(summary))
Path(snakemake.output.head_table).write_text(report.kernel_head_table_tex(summary))
Path(snakemake.output.summary).write_text(report.kernel_summary(summary))

"""Rule icl_paper_numbers: ICL macros and the accuracy table."""

from pathlib import Path

import pandas as pd

from iclgd.icl import report as icl_report
from iclgd.core import logs, paper

logs.to_file(snakemake.log[0])
acc = pd.read_csv(snakemake.input.acc)
paper.write_json(icl_report.icl_macros(acc), snakemake.output.macros)
Path(snakemake.output.table).write_text(icl_report.icl_table(acc))
Path(snakemake.output.summary).write_text(icl_report.icl_summary(acc))

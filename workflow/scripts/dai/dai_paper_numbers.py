"""Rule dai_paper_numbers: the Dai-metrics table, generated sentences and macros."""

from pathlib import Path

import pandas as pd

from iclgd.dai import report as dai_report
from iclgd.core import logs, paper

logs.to_file(snakemake.log[0])
summary = pd.read_csv(snakemake.input.table, dtype={"k": str})
paper.write_json(dai_report.dai_macros(summary, snakemake.params.dai), snakemake.output.macros)
Path(snakemake.output.table).write_text(dai_report.dai_table_tex(summary))
Path(snakemake.output.summary).write_text(dai_report.dai_summary(summary))

"""Rule labels_paper_numbers: the label-relationship claims table, sentences and macros."""

from pathlib import Path

import pandas as pd

from iclgd.labels import report as curves_report
from iclgd.core import logs, paper

logs.to_file(snakemake.log[0])
claims = pd.concat([pd.read_csv(p) for p in snakemake.input.claims], ignore_index=True)
claims.to_csv(snakemake.output.csv, index=False)
cfg = snakemake.params.curves
paper.write_json(curves_report.claims_macros(claims, cfg["n_demos"], cfg["repetitions"]), snakemake.output.macros)
Path(snakemake.output.table).write_text(curves_report.claims_table_tex(claims))
Path(snakemake.output.summary).write_text(curves_report.claims_summary(claims))

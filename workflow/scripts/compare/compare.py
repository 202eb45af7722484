"""Rule compare: Shen et al.'s and Dai et al.'s ICL-vs-GD metrics per test example and setting."""

from pathlib import Path

import pandas as pd

from iclgd.compare import report as compare_report
from iclgd.core import logs, paper

log = logs.to_file(snakemake.log[0])
read = lambda paths: pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)  # noqa: E731
examples = compare_report.icl_gd_examples(
    read(snakemake.input.icl),
    read(snakemake.input.finetune),
    read(snakemake.input.finetune_dev),
    read(snakemake.input.permuted),
)
table = compare_report.summary(examples)
examples.to_parquet(snakemake.output.examples, index=False)
table.to_csv(snakemake.output.table, index=False)
control = compare_report.control_table(examples, snakemake.params.controls)
control.to_csv(snakemake.output.control, index=False)
Path(snakemake.output.control_tex).write_text(compare_report.control_tex(control))
macros = compare_report.macros(table, examples) | compare_report.control_macros(control)
paper.write_json(macros, snakemake.output.macros)
Path(snakemake.output.tex).write_text(compare_report.table_tex(table))
Path(snakemake.output.summary).write_text(compare_report.summary_tex(examples))
log.info("%d examples, %d settings", len(examples), len(table))

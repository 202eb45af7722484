"""Rule construction_paper_numbers: macros, sparsity summary and table for the construction section."""

import json
from pathlib import Path

import pandas as pd

from iclgd.construction import report
from iclgd.core import logs, paper

logs.to_file(snakemake.log[0])
models = snakemake.params.models
per_layer = {m: pd.read_csv(p) for m, p in zip(models, snakemake.input.tables)}
hidden = {m: json.loads(Path(p).read_text())["d_model"] for m, p in zip(models, snakemake.input.shapes)}
summary = report.sparsity_summary(per_layer, hidden)
summary.to_csv(snakemake.output.summary, index=False, float_format="%.10g")
headline = json.loads(Path(snakemake.input.headline).read_text())
lsa_config = pd.read_csv(snakemake.input.lsa_config).iloc[0]
macros = report.lsa_macros(headline) | report.sparsity_macros(summary, snakemake.params.threshold)
macros["LsaOrderPerms"] = str(int(lsa_config["order_perms"]))
paper.write_json(macros, snakemake.output.macros)
Path(snakemake.output.table).write_text(report.sparsity_table_tex(summary))

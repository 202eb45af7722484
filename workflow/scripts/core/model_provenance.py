"""Rule model_provenance: where each model's weights came from, as a table and macros."""

from pathlib import Path

from iclgd.core import logs, paper, provenance

logs.to_file(snakemake.log[0])
records = provenance.read_model_records(snakemake.input.models)
p = snakemake.params
paper.write_json(provenance.setup_macros(records, p.datasets, p.icl, p.n_test), snakemake.output.macros)
Path(snakemake.output.table).write_text(provenance.models_table(records))

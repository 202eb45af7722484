"""Rule prepare_model: dequantise a PyPI GGUF once (or build the tiny test model) with provenance.

runtime.device / dtype (when the rule passes `runtime`) say where an untrained copy is drawn: LLaMa-7B's
must be built in bf16 on the GPU, not in float32 on the host.
"""

from iclgd.core import logs, models

log = logs.to_file(snakemake.log[0])
name = snakemake.wildcards.model
registry = {name: snakemake.params.spec} | snakemake.params.tokenizer_spec
runtime = snakemake.params.get("runtime", None) or {}
record = models.prepare_model(
    name, registry, snakemake.output[0], device=runtime.get("device", "auto"), dtype=runtime.get("dtype", "auto")
)
log.info("prepared %s: %s", name, record)

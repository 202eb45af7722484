"""Rule run_scale: the paragraph that states the scale this run used (for the limitations)."""

from pathlib import Path

from iclgd.core import logs, provenance

logs.to_file(snakemake.log[0])
p = snakemake.params
text = provenance.scale_paragraph(p.models, p.finetune, p.curves, p.curves_models, p.finetune_models, p.order, p.kernel)
Path(snakemake.output[0]).write_text(text)

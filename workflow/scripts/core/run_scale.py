"""Rule run_scale: the paragraph that states the scale this run used (for the limitations), as each study says it."""

from pathlib import Path

from iclgd.core import logs

logs.to_file(snakemake.log[0])
Path(snakemake.output[0]).write_text(snakemake.params.text)

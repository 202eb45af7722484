"""Rule macros: merge every stage's macro file into macros.json and render macros.tex."""

from iclgd.core import logs, paper

logs.to_file(snakemake.log[0])
macros = paper.merge_macros(snakemake.input.macros)
paper.write_json(macros, snakemake.output.json)
paper.render_macros(macros, snakemake.output.tex)

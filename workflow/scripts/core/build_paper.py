"""Rule paper: latexmk in a scratch directory holding the sources and every generated input."""

from pathlib import Path

from iclgd.core import latex, logs

logs.to_file(snakemake.log[0])
inputs = snakemake.input
generated = [inputs.macros, *inputs.tables]
latex.build(Path(inputs.tex), [Path(inputs.bib), Path(inputs.sty)], [Path(p) for p in generated], [Path(p) for p in inputs.figures],
            Path(snakemake.output[0]), Path(snakemake.log[0]))

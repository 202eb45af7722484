"""Rule figure_label_size: each Kossen et al. headline effect against the model's parameter count (counted from
the prepared model's architecture), with the plotted points as a CSV a reviewer can trace to claims.csv."""

from pathlib import Path

import pandas as pd

from iclgd.core import logs
from iclgd.core.model_size import parameter_count
from iclgd.labels import size_panel

log = logs.to_file(snakemake.log[0])
claims = pd.concat([pd.read_csv(p) for p in snakemake.input.claims], ignore_index=True)
parameters = {Path(d).name: parameter_count(d) for d in snakemake.input.models}
log.info("parameters: %s", parameters)
points = size_panel.size_points(claims, snakemake.params.registry, parameters)
points.to_csv(snakemake.output.csv, index=False)
log.info("%d points (%d models, %d datasets)", len(points), points["model"].nunique(), points["dataset"].nunique())
size_panel.plot_size_panel(points, snakemake.output.pdf, snakemake.output.png)

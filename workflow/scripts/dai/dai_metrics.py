"""Rule dai_metrics: Rec2FTP, SimAOU (vs a random update) and SimAM (vs zero-shot) from the captures."""

from pathlib import Path

import numpy as np
import pandas as pd

from iclgd.dai import report as dai_report
from iclgd.core import logs

log = logs.to_file(snakemake.log[0])
seed = int(snakemake.params.dai.get("seed", 0))
frames = []
for captures, correct in zip(snakemake.input.captures, snakemake.input.correct):
    model, dataset = Path(captures).parent.name, Path(captures).name.split(".")[0]
    with np.load(captures) as arrays:
        frames.append(dai_report.query_layer_frame(arrays, pd.read_parquet(correct), model, dataset, seed))
layers = pd.concat(frames, ignore_index=True)
queries = dai_report.query_frame(layers)
queries.to_parquet(snakemake.output.queries, index=False)
summary = dai_report.summarise(queries, snakemake.params.metrics)
summary.to_csv(snakemake.output.table, index=False)
dai_report.layer_summary(layers, snakemake.params.metrics).to_csv(snakemake.output.layers, index=False)
log.info("summary:\n%s", summary.to_string())

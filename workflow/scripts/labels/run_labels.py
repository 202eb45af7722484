"""Rule labels: per-position learning curves of one model on one dataset under every label condition.

For the novel task (`params.spec` from `labels.novel_spec`, which has `sources`), `input.train` is
the list of the sources' train parquets in `spec["sources"]` order.
Outputs: the per-(condition, repetition, position) table, per-position means with bootstrap CIs
(`curves`) and the claim-level gaps (`claims`).
"""

import pandas as pd
import torch

from iclgd.labels import curves

from iclgd.labels import conditions as labels
from iclgd.core import logs, models

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime, spec, cfg = snakemake.params.runtime, dict(snakemake.params.spec), snakemake.params.curves
if "sources" in spec:
    paths = [snakemake.input.train] if isinstance(snakemake.input.train, str) else list(snakemake.input.train)
    frames = {source: pd.read_parquet(path) for source, path in zip(spec["sources"], paths, strict=True)}
    train = labels.novel_pool(frames, spec, int(cfg["seed"]))
else:
    train = pd.read_parquet(snakemake.input.train)
log.info("%s: %d training rows, classes %s", spec["name"], len(train), list(spec["classes"]))
model, tok = models.load_model(snakemake.input.model, runtime["device"], runtime["dtype"])
table = curves.run_curves(model, tok, train, spec, cfg, model_name=snakemake.wildcards.model)
table.to_parquet(snakemake.output.table, index=False)
log.info("wrote %d rows (%d conditions)", len(table), table["condition"].nunique())
boot = snakemake.params.metrics
curves.aggregate(table, boot["n_boot"], boot["ci"], boot["seed"]).to_parquet(snakemake.output.curves, index=False)
curves.claims(table, cfg, boot["n_boot"], boot["ci"], boot["seed"]).to_csv(snakemake.output.claims, index=False)

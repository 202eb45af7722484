"""Rule label_curves: per-position learning curves of one model on one dataset under every label condition.

For the novel task (`params.spec` from `labels.novel_spec`, which has `sources`), `input.train` is
the list of the sources' train parquets in `spec["sources"]` order.
Optional named outputs `curves` (per-position means and CIs) and `claims` (summary gaps) are
written when the rule declares them.
"""

import pandas as pd
import torch

from iclgd import curves, labels, logs, models

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime, spec, cfg = snakemake.params.runtime, dict(snakemake.params.spec), labels.settings(snakemake.params.curves)
if "sources" in spec:
    paths = [snakemake.input.train] if isinstance(snakemake.input.train, str) else list(snakemake.input.train)
    frames = {source: pd.read_parquet(path) for source, path in zip(spec["sources"], paths, strict=True)}
    train = labels.novel_pool(frames, spec, int(cfg["seed"]))
else:
    train = pd.read_parquet(snakemake.input.train)
log.info("%s: %d training rows, classes %s", spec["name"], len(train), list(spec["classes"]))
model, tok = models.load_model(snakemake.input.model, runtime["device"], runtime["dtype"])
table = curves.run_curves(model, tok, train, spec, cfg, model_name=snakemake.wildcards.model)
table.to_parquet(snakemake.output[0], index=False)
log.info("wrote %d rows (%d conditions)", len(table), table["condition"].nunique())
if hasattr(snakemake.output, "curves"):
    curves.aggregate(table).to_parquet(snakemake.output.curves, index=False)
if hasattr(snakemake.output, "claims"):
    curves.claims(table, cfg).to_csv(snakemake.output.claims, index=False)

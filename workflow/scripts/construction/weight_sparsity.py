"""Rule weight_sparsity: per-layer q/k/v projection sparsity of one prepared model."""

import json

from iclgd.core import logs, models
from iclgd.construction import sparsity

log = logs.to_file(snakemake.log[0])
model, _ = models.load_model(snakemake.input.model, "cpu", "float32")
table = sparsity.model_attention_sparsity(model, snakemake.params.thresholds)
table.insert(0, "model", snakemake.wildcards.model)
table.to_csv(snakemake.output.table, index=False, float_format="%.10g")
with open(snakemake.output.shape, "w", encoding="utf-8") as fh:
    json.dump({"d_model": model.config.hidden_size, "layers": int(table["layer"].max()) + 1}, fh, indent=1)
log.info("%s: %d rows", snakemake.wildcards.model, len(table))

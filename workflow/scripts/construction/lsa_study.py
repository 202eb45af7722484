"""Rule lsa_study: train linear self-attention on the ICL objective; compare with one GD step."""

import json

from iclgd.core import logs
from iclgd.construction import lsa

log = logs.to_file(snakemake.log[0])
tables, headline = lsa.lsa_study(snakemake.params.lsa, snakemake.params.thresholds)
for name, table in tables.items():
    table.to_csv(snakemake.output[name], index=False, float_format="%.10g")
seconds = headline.pop("train_seconds")  # wall time lives in the benchmark file, not in results
with open(snakemake.output.headline, "w", encoding="utf-8") as fh:
    json.dump(headline, fh, indent=1, sort_keys=True)
log.info("LSA vs GD after %.0f s of training: %s", seconds, headline)

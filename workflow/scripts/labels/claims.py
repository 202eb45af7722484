"""Rule labels_claims: Kossen et al.'s headline contrasts as tested statements, one t test over random contexts
per (model, dataset, contrast)."""

import pandas as pd

from iclgd.core import claim_rows, logs
from iclgd.labels import claims

log = logs.to_file(snakemake.log[0])
tables = pd.concat([pd.read_parquet(p) for p in snakemake.input.tables], ignore_index=True)
boot = {key: snakemake.params.metrics[key] for key in ("n_boot", "ci", "seed")}
rows = claims.kossen_tests(tables, snakemake.params.labels, **boot, alpha=snakemake.params.alpha)
claim_rows.write(snakemake.output.rows, claim_rows.ClaimRows("labels", rows))
log.info("%d claim rows", len(rows))

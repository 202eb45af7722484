"""Rule kernel_claims: Han et al.'s reconstruction claim per (model, dataset), the best head against a constant
vote on the same held-out queries."""

import pandas as pd

from iclgd.core import claim_rows, logs
from iclgd.kernel import claims

log = logs.to_file(snakemake.log[0])
paths = snakemake.input.summaries
summaries = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()
rows = claims.kernel_claims(summaries)
claim_rows.write(snakemake.output.rows, claim_rows.ClaimRows("kernel", rows))
log.info("%d claim rows", len(rows))

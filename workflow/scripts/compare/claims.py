"""Rule compare_claims: "ICL agrees more with itself in another demonstration order than with GD" as tested
statements, per fine-tuned model (the untrained controls are not claims)."""

import pandas as pd

from iclgd.compare import claims
from iclgd.core import claim_rows, logs

log = logs.to_file(snakemake.log[0])
examples = pd.read_parquet(snakemake.input.examples)
rows = claims.permutation_claims(examples[examples["model"].isin(snakemake.params.models)], snakemake.params.alpha)
claim_rows.write(snakemake.output.rows, claim_rows.ClaimRows("compare", rows))
log.info("%d claim rows", len(rows))

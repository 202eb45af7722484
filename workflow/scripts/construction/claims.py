"""Rule construction_claims: the construction's criteria (LSA = GD to numerical precision; real weights far from
the construction's sparsity) as exact rows of the claims table."""

import json
from pathlib import Path

import pandas as pd

from iclgd.core import claim_rows, logs
from iclgd.construction import claims

log = logs.to_file(snakemake.log[0])
headline = json.loads(Path(snakemake.input.lsa).read_text())
sparsity = pd.read_csv(snakemake.input.sparsity)
exact = claims.construction_claims(headline, sparsity, snakemake.params.threshold)
claim_rows.write(snakemake.output.rows, claim_rows.ClaimRows("construction", pd.DataFrame(), exact))
log.info("%d exact rows", len(exact))

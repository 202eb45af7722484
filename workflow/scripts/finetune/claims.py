"""Rule finetune_claims: ICL vs GD on the same demonstrations as tested statements (crossed tests per setting,
the pooled and inconsistency claims), the per-setting tests, non-label prediction rates and their macros."""

import pandas as pd

from iclgd.core import claim_rows, logs, paper
from iclgd.finetune import claims

log = logs.to_file(snakemake.log[0])
read = lambda paths: pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)  # noqa: E731
alpha, seed, models = snakemake.params.alpha, snakemake.params.seed, snakemake.params.models

icl, ft, ft_dev = read(snakemake.input.icl), read(snakemake.input.finetune), read(snakemake.input.finetune_dev)
paired = claims.paired_icl_gd(icl, ft, ft_dev)
tests = claims.icl_vs_gd_tests(paired, alpha)
rates = claims.nonlabel_rates(icl, ft, ft_dev)
rows = claims.shen_claims(paired, alpha, seed)

tests.to_csv(snakemake.output.tests, index=False)
rates.to_csv(snakemake.output.nonlabel, index=False)
claim_rows.write(snakemake.output.rows, claim_rows.ClaimRows("finetune", rows))
macros = (claims.setting_macros(tests, alpha) | claims.nonlabel_macros(rates, models)
          | {"IclDemoSets": str(snakemake.params.demo_sets)})
paper.write_json(macros, snakemake.output.macros)
log.info("%d paired rows, %d tests, %d claim rows: %s", len(paired), len(tests), len(rows), macros)

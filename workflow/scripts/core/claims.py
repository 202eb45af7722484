"""Rule claims: crossed tests of ICL vs GD, the label-relationship gaps and the kernel head; power; verdicts."""

import json
from pathlib import Path

import pandas as pd

from iclgd.core import claims, claims_tex, logs, paper
from iclgd.icl_vs_gd import claims as shen_claims
from iclgd.kernel_regression import claims as kernel_claims
from iclgd.label_relationships import claims as kossen_claims

log = logs.to_file(snakemake.log[0])
read = lambda paths: pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)  # noqa: E731
read_csv = lambda paths: pd.concat([pd.read_csv(p) for p in paths], ignore_index=True) if paths else pd.DataFrame()  # noqa: E731
boot = {key: snakemake.params.metrics[key] for key in ("n_boot", "ci", "seed")}
alpha, seed = snakemake.params.claims["alpha"], snakemake.params.claims["seed"]

icl, ft, ft_dev = read(snakemake.input.icl), read(snakemake.input.finetune), read(snakemake.input.finetune_dev)
paired = shen_claims.paired_icl_gd(icl, ft, ft_dev)
tests = shen_claims.icl_vs_gd_tests(paired, alpha)
rates = shen_claims.nonlabel_rates(icl, ft, ft_dev)
kossen = kossen_claims.kossen_tests(read(snakemake.input.curves), snakemake.params.curves, **boot, alpha=alpha)
headline = json.loads(Path(snakemake.input.lsa).read_text())
sparsity = pd.read_csv(snakemake.input.sparsity)
construction = shen_claims.construction_claims(headline, sparsity, snakemake.params.threshold)
compared = pd.read_parquet(snakemake.input.compare)
permuted = shen_claims.permutation_claims(compared[compared["model"].isin(snakemake.params.models)], alpha)
shen = pd.concat([shen_claims.shen_claims(paired, alpha, seed), permuted], ignore_index=True)
kernel = kernel_claims.kernel_claims(read_csv(snakemake.input.kernel))
table = claims.claims_table([shen, kossen, kernel], construction, snakemake.params.claims)

tests.to_csv(snakemake.output.tests, index=False)
rates.to_csv(snakemake.output.nonlabel, index=False)
table.to_csv(snakemake.output.claims, index=False)
sizing = claims.sizing(table, snakemake.params.sizing | {"references": snakemake.params.claims["references"]})
sizing.to_csv(snakemake.output.sizing, index=False)
log.info("sizing (config key: value that powers every seed-quantified claim):\n%s",
         claims.sizing_summary(sizing).to_string(index=False))
macros = (claims_tex.claims_macros(table) | shen_claims.setting_macros(tests, alpha)
          | shen_claims.nonlabel_macros(rates, snakemake.params.models)
          | {"IclDemoSets": str(len(snakemake.params.sizing["icl"]["demo_seeds"]))})
paper.write_json(macros, snakemake.output.macros)
Path(snakemake.output.table).write_text(claims_tex.claims_tex(table))
Path(snakemake.output.headline).write_text(claims_tex.headline_tex(table))
Path(snakemake.output.references).write_text(claims_tex.references_tex(table))
log.info("%d paired rows, %d tests, %d claims: %s", len(paired), len(tests), len(table), macros)

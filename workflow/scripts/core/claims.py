"""Rule claims: every study's claim rows -> Holm within families, power, verdicts; the claims table, the
sizing of each claim's N, the verdict macros and the LaTeX tables. Names no study: the rows come from the
files the studies registered (common.smk `contribute(claims=...)`), their knobs from the study registry."""

from pathlib import Path

from iclgd.core import claim_rows, claims, claims_tex, logs, paper, studies

log = logs.to_file(snakemake.log[0])
parts = [claim_rows.read(p) for p in snakemake.input.rows]
specs = studies.by_name(studies.discover())
table, sizing = claims.assemble(parts, specs, snakemake.params.claims, snakemake.params.sizing)
table.to_csv(snakemake.output.claims, index=False)
sizing.to_csv(snakemake.output.sizing, index=False)
log.info("sizing (config key: value that powers every seed-quantified claim):\n%s",
         claims.sizing_summary(sizing).to_string(index=False))
macros = claims_tex.claims_macros(table)
paper.write_json(macros, snakemake.output.macros)
Path(snakemake.output.table).write_text(claims_tex.claims_tex(table))
Path(snakemake.output.headline).write_text(claims_tex.headline_tex(table))
Path(snakemake.output.references).write_text(claims_tex.references_tex(table))
log.info("%d claims from %s: %s", len(table), sorted({p.study for p in parts}), macros)

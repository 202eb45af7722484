"""Rule build_prompts: sample and render the demonstrations of every (n_demos, demo seed) a study reads."""

import pandas as pd

from iclgd.core import logs, prompts

log = logs.to_file(snakemake.log[0])
grid = snakemake.params.prompts
sets = prompts.build_prompt_sets(
    snakemake.wildcards.dataset,
    snakemake.params.spec,
    pd.read_parquet(snakemake.input.train),
    pd.read_parquet(snakemake.input.test),
    grid["n_demos"],
    grid["demo_seeds"],
    grid["balanced"],
    grid["replace"],
)
prompts.write_prompt_sets(sets, snakemake.output[0])
log.info("wrote %d prompt sets", len(sets))

"""Rule prepare_data: raw files (mirror or hub) -> normalised train pool and fixed test subset."""

from pathlib import Path

from iclgd.core import data, logs

log = logs.to_file(snakemake.log[0])
cfg = snakemake.params.data
train, test = data.prepare_dataset(
    snakemake.params.spec, Path(cfg["mirror_dir"]), cfg["n_test"], cfg["seed"], cfg["source"]
)
log.info("%s: train pool %d rows, test %d rows", snakemake.wildcards.dataset, len(train), len(test))
data.write_split(train, snakemake.output.train)
data.write_split(test, snakemake.output.test)

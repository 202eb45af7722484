"""Rule provenance_appendix: commit, config hash, packages, machine and per-job runtime for the paper."""

import json
from pathlib import Path

from iclgd.core import logs, paper, provenance

log = logs.to_file(snakemake.log[0])
p = snakemake.params
cfg_hash = provenance.config_hash(dict(p.config))
env = provenance.environment()
bench = provenance.read_benchmarks(p.benchmarks)
Path(snakemake.output.tex).write_text(provenance.appendix_tex(p.commit, cfg_hash, list(p.configfiles), env, bench))
paper.write_json(provenance.appendix_macros(bench), snakemake.output.macros)
record = {"commit": p.commit, "config_sha256": cfg_hash, "configfiles": list(p.configfiles), "environment": env,
          "benchmarks": bench.to_dict("records")}
Path(snakemake.output.json).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
log.info("commit %s, config %s, %d benchmarked jobs", p.commit, cfg_hash[:12], len(bench))

"""Rule kernel: Han et al.'s kernel-regression analyses of one model on one dataset.

Outputs: a one-row summary (best head, its agreement/accuracy on the evaluation part, baselines),
per-head scores and attention-mass split, the mean 30-point attention profile per head, and the
ridge-probe accuracies of keys and values.
"""

import pandas as pd
import torch

from iclgd.kernel.run import run_kernel
from iclgd.core import logs, models

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime, spec = snakemake.params.runtime, dict(snakemake.params.spec)
cfg = snakemake.params.kernel
train = pd.read_parquet(snakemake.input.train)
test = pd.read_parquet(snakemake.input.test)
log.info("%s: %d training rows, %d test rows, settings %s", spec["name"], len(train), len(test), cfg)
model, tok = models.load_model(snakemake.input.model, runtime["device"], runtime["dtype"])
out = run_kernel(model, tok, train, test, spec, cfg, snakemake.params.metrics, model_name=snakemake.wildcards.model)
out["summary"].to_csv(snakemake.output.summary, index=False)
out["heads"].to_parquet(snakemake.output.heads, index=False)
out["profile"].to_parquet(snakemake.output.profile, index=False)
out["probes"].to_csv(snakemake.output.probes, index=False)
log.info("summary:\n%s", out["summary"].T.to_string())

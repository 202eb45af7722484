"""Rule dai: Dai et al.'s zero-shot / ICL / fine-tuned captures of one model on one dataset.

One job = one (model, dataset): zero-shot is captured once, then for every prompt set of `dai.n_demos`
(and `dai.demo_seeds`, as the run resolves them) ICL is captured, a copy of the base weights is fine-tuned Dai's way (SGD on k_proj/v_proj,
batch 1, prompt order) and captured zero-shot, and the base weights are restored.
"""

import json

import numpy as np
import torch

from iclgd.dai.run import DaiConfig, run_dai
from iclgd.core import logs, models, prompts
from iclgd.finetune import run as finetune

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime = snakemake.params.runtime
cfg = DaiConfig.from_dict(dict(snakemake.params.dai))
sets = prompts.read_prompt_sets(snakemake.input.prompts)
log.info("%s / %s: %d prompt sets in the file, settings %s", snakemake.wildcards.model,
         snakemake.wildcards.dataset, len(sets), cfg)
model, tok = models.load_model(snakemake.input.model, runtime["device"], runtime["dtype"])
arrays, correct, runs = run_dai(model, tok, sets, cfg)
np.savez_compressed(snakemake.output.captures, **arrays)
correct.to_parquet(snakemake.output.correct, index=False)
summary = {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "runs": runs.to_dict("records"),
           "memory": finetune.peak_memory(model.device)}
with open(snakemake.output.summary, "w") as handle:
    json.dump(summary, handle, indent=1, default=float)
log.info("runs:\n%s", runs.to_string())

"""Rule icl: score every prompt set of one dataset with one model."""

import pandas as pd
import torch
from tqdm.auto import tqdm

from iclgd import logs, models, prompts, scoring

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime = snakemake.params.runtime
model, tok = models.load_model(snakemake.input.model, runtime["device"], runtime["dtype"])
tags = {"model": snakemake.wildcards.model, "method": "icl"}
batching = {"batch_size": runtime["batch_size"], "batch_tokens": runtime["batch_tokens"]}
frames = []
for prompt_set in tqdm(prompts.read_prompt_sets(snakemake.input.prompts), desc="prompt sets"):
    frames.append(scoring.score_prompt_set(model, tok, prompt_set, tags=tags, **batching))
records = pd.concat(frames, ignore_index=True)
records.to_parquet(snakemake.output[0], index=False)
log.info("scored %d records", len(records))

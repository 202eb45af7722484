"""Rule icl: score every prompt set of one dataset with one model, and the permuted-order copies of
the k >= 2 sets (Shen et al.'s ICL-vs-ICL reference)."""

import pandas as pd
import torch
from tqdm.auto import tqdm

from iclgd.core import forward, logs, models, prompts

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime = snakemake.params.runtime
model, tok = models.load_model(snakemake.input.model, runtime["device"], runtime["dtype"])
tags = {"model": snakemake.wildcards.model, "method": "icl"}
batching = {"batch_size": runtime["batch_size"], "batch_tokens": runtime["batch_tokens"]}


def score(sets: list[dict], desc: str) -> pd.DataFrame:
    frames = [forward.score_prompt_set(model, tok, ps, tags=tags, **batching) for ps in tqdm(sets, desc=desc)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=forward.RECORD_COLUMNS)


sets = prompts.read_prompt_sets(snakemake.input.prompts)
records = score(sets, "prompt sets")
records.to_parquet(snakemake.output.records, index=False)
reorder = snakemake.params.reorder
permuted = score(prompts.permuted_sets(sets, reorder["permuted_orders"], reorder["permuted_queries"]), "permuted orders")
permuted.to_parquet(snakemake.output.permuted, index=False)
log.info("scored %d records, %d in permuted orders", len(records), len(permuted))

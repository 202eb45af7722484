"""Rule icl: score the prompt sets of icl.n_demos x icl.demo_seeds of one dataset with one model, and
the permuted-order copies of the k >= 2 ones (Shen et al.'s ICL-vs-ICL reference).

The prompt file may hold more settings (those other studies read: order.n_demos, order.demo_seed);
they are not scored here."""

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


n_demos, demo_seeds = set(snakemake.params.n_demos), set(snakemake.params.demo_seeds)
sets = [
    ps for ps in prompts.read_prompt_sets(snakemake.input.prompts)
    if ps["k"] in n_demos and (ps["k"] == 0 or ps["seed"] in demo_seeds)  # zero-shot: one set, seed 0
]
records = score(sets, "prompt sets")
records.to_parquet(snakemake.output.records, index=False)
permuted_cfg = snakemake.params.permuted
permuted = score(prompts.permuted_sets(sets, permuted_cfg["orders"], permuted_cfg["n_queries"]), "permuted orders")
permuted.to_parquet(snakemake.output.permuted, index=False)
log.info("scored %d records, %d in permuted orders", len(records), len(permuted))

"""Rule finetune: fine-tune one model on every prompt set's demonstrations until it has learned them,
and score the converged runs zero-shot.

One job = one (model, dataset): the model is loaded once and the whole grid (prompt sets with
k >= 1 of icl.n_demos and of finetune's demonstration seeds x optimizers x subsets x lrs) runs from
in-memory restores of its base weights. The dev split for learning-rate selection comes from the
demonstration pool, minus every demonstration (of those seeds, any k in the file) and test query of
the dataset's prompt sets, class-balanced (finetune.dev_size queries); the lr is the one with the
lowest mean dev label loss among the converged runs.
"""

import json

import pandas as pd
import torch

from iclgd.core import logs, models, prompts
from iclgd.finetune import run as finetune

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime = snakemake.params.runtime
grid = finetune.GridConfig.from_dict(dict(snakemake.params.finetune))
dataset, model_name = snakemake.wildcards.dataset, snakemake.wildcards.model

seeds, n_demos = set(snakemake.params.demo_seeds), set(snakemake.params.n_demos)
sets = [ps for ps in prompts.read_prompt_sets(snakemake.input.prompts) if ps["k"] >= 1 and ps["seed"] in seeds]
used = {d["uid"] for ps in sets for d in ps["demos"]} | {q["uid"] for ps in sets for q in ps["queries"]}
sets = [ps for ps in sets if ps["k"] in n_demos]  # those of icl.n_demos: the ICL runs they are compared with
train = pd.read_parquet(snakemake.input.train)
dev = finetune.dev_examples(train, snakemake.params.spec["template"], used, grid.dev_size, grid.seed, dataset)
log.info("%d prompt sets, %d dev examples, grid %s", len(sets), len(dev), grid)

model, tok = models.load_model(snakemake.input.model, runtime["device"], runtime["dtype"])
result = finetune.run_grid(
    model, tok, sets, grid, dev, tags={"model": model_name},
    batch_size=runtime["batch_size"], batch_tokens=runtime["batch_tokens"],
)
result.records.to_parquet(snakemake.output.records, index=False)
result.dev_records.to_parquet(snakemake.output.dev, index=False)
result.runs.to_csv(snakemake.output.runs, index=False)

selected = finetune.select_lr(finetune.dev_scores(result.dev_records))
summary = finetune.grid_summary(grid, result, selected, model.device)
summary |= {"model": model_name, "dataset": dataset, "dev_uids": [d["uid"] for d in dev]}
with open(snakemake.output.summary, "w", encoding="utf-8") as fh:
    json.dump(summary, fh, indent=1, sort_keys=True, default=lambda o: o.item() if hasattr(o, "item") else str(o))
log.info(
    "%d runs (%s), train %.0f s, eval %.0f s, %d records, peak %s",
    summary["n_runs"], summary["status"], summary["train_seconds"], summary["eval_seconds"],
    len(result.records), summary["memory"],
)

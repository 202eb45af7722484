"""Rule order: Shen et al.'s order experiment for one (model, dataset).

ICL and fine-tuning (gd / sgd / adam) on one k-demonstration prompt set under R orderings;
per-query spreads across orderings and a tidy table with bootstrap CIs over queries.
"""

import json
import time

import torch

from iclgd.core import logs, models, prompts
from iclgd.finetune import run as finetune
from iclgd.order import run as order

log = logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime, boot = snakemake.params.runtime, snakemake.params.metrics
cfg = order.OrderConfig.from_dict(dict(snakemake.params.order))
model_name, dataset = snakemake.wildcards.model, snakemake.wildcards.dataset
ps = order.pick_prompt_set(prompts.read_prompt_sets(snakemake.input.prompts), cfg.n_demos, cfg.demo_seed)
log.info("%s / %s: %s", model_name, dataset, cfg)

started = time.perf_counter()
model, tok = models.load_model(snakemake.input.model, runtime["device"], runtime["dtype"])
result = order.run_order(
    model, tok, ps, cfg, tags={"model": model_name},
    batch_size=runtime["batch_size"], batch_tokens=runtime["batch_tokens"],
)
seconds = time.perf_counter() - started
table = order.spread_table(result.per_query, boot["n_boot"], boot["ci"], boot["seed"])
result.records.to_parquet(snakemake.output.records, index=False)
result.per_query.to_parquet(snakemake.output.per_query, index=False)
table.to_csv(snakemake.output.table, index=False)
info = order.summary(cfg, result, model.get_output_embeddings().weight.shape[0], seconds)
info |= {"model": model_name, "dataset": dataset, "memory": finetune.peak_memory(model.device)}
with open(snakemake.output.summary, "w", encoding="utf-8") as fh:
    json.dump(info, fh, indent=1, sort_keys=True, default=lambda o: o.item() if hasattr(o, "item") else str(o))
last = table[(table["epoch"] == table["epoch"].max()) | (table["method"] == "icl")]
log.info("%.0f s; spreads (ICL and last epoch):\n%s", seconds,
         last[last["statistic"].isin(["label", "vocab"])].to_string(index=False))

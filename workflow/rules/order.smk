"""Study order: sensitivity of ICL and of fine-tuning to the order of the demonstrations (Shen, Mishra &
Khashabi 2023; package iclgd.order). Orderings per (model, dataset) -> spread tables -> figure, paper numbers.
"""

from iclgd.order import study as order_study

ORDER = RUN.studies["order"]
ORDER_TABLES = expand(
    "results/order/{model}/{dataset}/spread.csv",
    model=ORDER.models,
    dataset=ORDER.datasets,
)


rule order:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
    output:
        records="results/order/{model}/{dataset}/records.parquet",
        per_query="results/order/{model}/{dataset}/per_query.parquet",
        table="results/order/{model}/{dataset}/spread.csv",
        summary="results/order/{model}/{dataset}/summary.json",
    log:
        "logs/order/{model}/{dataset}.log",
    benchmark:
        "benchmarks/order/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=train_mem_mb,
        gpu=MODEL_GPUS,
    params:
        order=lambda wildcards: order_study.order_block(RUN, wildcards.model),
        runtime=config["runtime"],
        metrics=config["metrics"],
    script:
        "../scripts/order/run_order.py"


rule figure_order:
    input:
        tables=ORDER_TABLES,
        code=lib("order.report", "core.figures"),
    output:
        pdf="figures/order_sensitivity.pdf",
        png=report(
            "figures/order_sensitivity.png",
            caption="../report/order_sensitivity.rst",
            category="ICL vs GD",
        ),
    log:
        "logs/figure_order.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/order/figure_order.py"


rule order_paper_numbers:
    input:
        tables=ORDER_TABLES,
        code=lib("order.report", "core.paper"),
    output:
        csv="results/metrics/order_spread.csv",
        macros="results/paper/macros/order.json",
        table="paper/generated/tab_order.tex",
        summary="paper/generated/order_summary.tex",
    log:
        "logs/order_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        order=RUN.blocks["order"],
    script:
        "../scripts/order/order_paper_numbers.py"


contribute(
    macros=["results/paper/macros/order.json"],
    tables=["paper/generated/order_summary.tex", "paper/generated/tab_order.tex"],
    figures=["figures/order_sensitivity.pdf"],
    benchmarks=expand(
        "benchmarks/order/{model}/{dataset}.tsv",
        model=ORDER.models,
        dataset=ORDER.datasets,
    ),
    benchmarked=ORDER_TABLES,
)

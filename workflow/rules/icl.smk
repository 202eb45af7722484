"""Study icl: ICL accuracy against the number of demonstrations N (Shen, Mishra & Khashabi 2023; package
iclgd.icl). Every prompt set scored on every model in use -> accuracy per (model, dataset, N) -> figure and
paper numbers. Its records also serve studies finetune (the same demonstrations) and dai.
"""

ICL_RECORDS = expand(
    "results/icl/{model}/{dataset}.parquet", model=MODELS, dataset=DATASETS
)


rule icl:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
    output:
        records="results/icl/{model}/{dataset}.parquet",
        permuted="results/icl/{model}/{dataset}.permuted.parquet",
    log:
        "logs/icl/{model}/{dataset}.log",
    benchmark:
        "benchmarks/icl/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=score_mem_mb,
        gpu=MODEL_GPUS,
    params:
        runtime=config["runtime"],
        n_demos=config["icl"]["n_demos"],
        demo_seeds=config["icl"]["demo_seeds"],
        permuted=config["icl"]["permuted"],
    script:
        "../scripts/icl/run_icl.py"


rule icl_metrics:
    input:
        records=ICL_RECORDS,
        code=lib("core.metrics"),
    output:
        acc="results/metrics/icl_accuracy.csv",
        per_seed="results/metrics/icl_accuracy_per_seed.csv",
    log:
        "logs/icl_metrics.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        metrics=config["metrics"],
    script:
        "../scripts/icl/icl_metrics.py"


rule figure_icl_accuracy:
    input:
        acc="results/metrics/icl_accuracy.csv",
        code=lib("core.figures"),
    output:
        pdf="figures/icl_accuracy_vs_k.pdf",
        png=report(
            "figures/icl_accuracy_vs_k.png",
            caption="../report/icl_accuracy.rst",
            category="ICL",
        ),
    log:
        "logs/figure_icl_accuracy.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/icl/figure_icl_accuracy.py"


rule icl_paper_numbers:
    input:
        acc="results/metrics/icl_accuracy.csv",
        code=lib("icl.report", "core.paper"),
    output:
        macros="results/paper/macros/icl.json",
        table="paper/generated/tab_icl.tex",
        summary="paper/generated/icl_summary.tex",
    log:
        "logs/icl_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/icl/icl_paper_numbers.py"


contribute(
    macros=["results/paper/macros/icl.json"],
    tables=["paper/generated/tab_icl.tex", "paper/generated/icl_summary.tex"],
    figures=["figures/icl_accuracy_vs_k.pdf"],
    benchmarks=expand(
        "benchmarks/icl/{model}/{dataset}.tsv", model=MODELS, dataset=DATASETS
    ),
    benchmarked=ICL_RECORDS,
)

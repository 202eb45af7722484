"""Study: Dai et al. 2023's ICL-vs-fine-tuning metrics (package iclgd.dai_metrics).

Attention captured under zero-shot, ICL and Dai's fine-tuning -> Rec2FTP, SimAOU, SimAM ->
figure and paper numbers."""

#: Every (model, dataset) the run resolves for Dai's metrics (the control models only on the control's datasets).
DAI_CAPTURES = [
    f"results/dai/{model}/{dataset}.npz" for model, dataset in RUN.pairs["dai"]
]


rule dai:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
    output:
        captures="results/dai/{model}/{dataset}.npz",
        correct="results/dai/{model}/{dataset}.correct.parquet",
        summary="results/dai/{model}/{dataset}.json",
    log:
        "logs/dai/{model}/{dataset}.log",
    benchmark:
        "benchmarks/dai/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=score_mem_mb,
        gpu=MODEL_GPUS,
    params:
        dai=RUN.blocks["dai"],
        runtime=config["runtime"],
    script:
        "../scripts/dai/run_dai.py"


rule dai_metrics:
    input:
        captures=DAI_CAPTURES,
        correct=[p.replace(".npz", ".correct.parquet") for p in DAI_CAPTURES],
        code=lib(
            "dai.report",
            "dai.similarity",
            "dai.capture",
            "core.metrics",
            "core.stats",
        ),
    output:
        table="results/metrics/dai_metrics.csv",
        layers="results/metrics/dai_layers.csv",
        queries="results/metrics/dai_queries.parquet",
    log:
        "logs/dai_metrics.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        dai=RUN.blocks["dai"],
        metrics=config["metrics"],
    script:
        "../scripts/dai/dai_metrics.py"


rule figure_dai:
    input:
        layers="results/metrics/dai_layers.csv",
        code=lib("dai.report", "core.figures"),
    output:
        pdf="figures/dai_layers.pdf",
        png=report(
            "figures/dai_layers.png",
            caption="../report/dai_layers.rst",
            category="ICL vs GD",
        ),
    log:
        "logs/figure_dai.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/dai/figure_dai.py"


rule dai_paper_numbers:
    input:
        table="results/metrics/dai_metrics.csv",
        code=lib("dai.report", "dai.run", "core.paper"),
    output:
        macros="results/paper/macros/dai.json",
        table="paper/generated/tab_dai.tex",
        summary="paper/generated/dai_summary.tex",
    log:
        "logs/dai_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        dai=RUN.blocks["dai"],
    script:
        "../scripts/dai/dai_paper_numbers.py"


contribute(
    macros=["results/paper/macros/dai.json"],
    tables=["paper/generated/tab_dai.tex", "paper/generated/dai_summary.tex"],
    figures=["figures/dai_layers.pdf"],
    benchmarks=[
        p.replace("results/dai", "benchmarks/dai").replace(".npz", ".tsv")
        for p in DAI_CAPTURES
    ],
    benchmarked=DAI_CAPTURES,
)

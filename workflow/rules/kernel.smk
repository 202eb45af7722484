"""Study: ICL as kernel regression (Han et al. 2023; package iclgd.kernel_regression).

Last-token attention over the demonstrations as kernel weights -> figure and paper numbers.
"""

KERNEL_SUMMARIES = [
    f"results/kernel/{model}/{dataset}/summary.csv"
    for model, dataset in RUN.pairs["kernel"]
]


rule kernel:
    input:
        train="results/data/{dataset}/train.parquet",
        test="results/data/{dataset}/test.parquet",
        model="resources/models/{model}",
    output:
        summary="results/kernel/{model}/{dataset}/summary.csv",
        heads="results/kernel/{model}/{dataset}/heads.parquet",
        profile="results/kernel/{model}/{dataset}/profile.parquet",
        probes="results/kernel/{model}/{dataset}/probes.csv",
    log:
        "logs/kernel/{model}/{dataset}.log",
    benchmark:
        "benchmarks/kernel/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=score_mem_mb,
        gpu=MODEL_GPUS,
    params:
        spec=named_spec,
        kernel=RUN.blocks["kernel"],
        metrics=config["metrics"],
        runtime=config["runtime"],
    script:
        "../scripts/kernel/run_kernel.py"


rule figure_kernel:
    input:
        summaries=KERNEL_SUMMARIES,
        heads=[p.replace("summary.csv", "heads.parquet") for p in KERNEL_SUMMARIES],
        code=lib("kernel.report", "core.figures"),
    output:
        pdf="figures/kernel_heads.pdf",
        png=report(
            "figures/kernel_heads.png",
            caption="../report/kernel_heads.rst",
            category="Kernel regression",
        ),
    log:
        "logs/figure_kernel.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/kernel/figure_kernel.py"


rule kernel_paper_numbers:
    input:
        summaries=KERNEL_SUMMARIES,
        code=lib("kernel.report", "core.paper"),
    output:
        csv="results/metrics/kernel_summary.csv",
        macros="results/paper/macros/kernel.json",
        table="paper/generated/tab_kernel.tex",
        head_table="paper/generated/tab_kernel_head.tex",
        summary="paper/generated/kernel_summary.tex",
    log:
        "logs/kernel_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        kernel=RUN.blocks["kernel"],
    script:
        "../scripts/kernel/kernel_paper_numbers.py"


rule kernel_claims:
    input:
        summaries=KERNEL_SUMMARIES,
        code=lib("kernel.claims", "core.claim_rows"),
    output:
        rows="results/claims/kernel.pkl",
    log:
        "logs/kernel_claims.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/kernel/claims.py"


contribute(
    claims=["results/claims/kernel.pkl"],
    macros=["results/paper/macros/kernel.json"],
    tables=[
        "paper/generated/tab_kernel.tex",
        "paper/generated/tab_kernel_head.tex",
        "paper/generated/kernel_summary.tex",
    ],
    figures=["figures/kernel_heads.pdf"],
    benchmarks=[f"benchmarks/kernel/{m}/{d}.tsv" for m, d in RUN.pairs["kernel"]],
    benchmarked=KERNEL_SUMMARIES,
)

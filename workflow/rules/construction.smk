"""Study construction: the hand-constructed "ICL = GD" weights (linear self-attention trained in context vs
by gradient descent) and real weights' distance from the construction's sparsity (Shen, Mishra & Khashabi
2023; package iclgd.construction) -> claim rows, figures and paper numbers."""


rule lsa_study:
    input:
        code=lib("construction.lsa", "construction.lsa_construction"),
    output:
        convergence="results/lsa/convergence.csv",
        order_sensitivity="results/lsa/order_sensitivity.csv",
        weight_sparsity="results/lsa/weight_sparsity.csv",
        config="results/lsa/config.csv",
        headline="results/lsa/headline.json",
    log:
        "logs/lsa_study.log",
    benchmark:
        "benchmarks/lsa_study.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    params:
        lsa=config["construction"]["lsa"],
        thresholds=config["construction"]["thresholds"],
    script:
        "../scripts/construction/lsa_study.py"


rule weight_sparsity:
    input:
        model="resources/models/{model}",
        code=lib("construction.sparsity"),
    output:
        table="results/sparsity/{model}.csv",
        shape="results/sparsity/{model}.json",
    log:
        "logs/weight_sparsity/{model}.log",
    benchmark:
        "benchmarks/weight_sparsity/{model}.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=float32_mem_mb,
    params:
        thresholds=config["construction"]["thresholds"],
    script:
        "../scripts/construction/weight_sparsity.py"


rule construction_paper_numbers:
    input:
        tables=expand("results/sparsity/{model}.csv", model=MODELS),
        shapes=expand("results/sparsity/{model}.json", model=MODELS),
        headline="results/lsa/headline.json",
        lsa_config="results/lsa/config.csv",
        code=lib("construction.report", "construction.sparsity", "core.paper"),
    output:
        summary="results/metrics/weight_sparsity_summary.csv",
        macros="results/paper/macros/construction.json",
        table="paper/generated/tab_sparsity.tex",
    log:
        "logs/construction_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        threshold=config["construction"]["macro_threshold"],
    script:
        "../scripts/construction/construction_paper_numbers.py"


rule figure_construction:
    input:
        convergence="results/lsa/convergence.csv",
        sparsity="results/metrics/weight_sparsity_summary.csv",
        code=lib("construction.report", "construction.lsa", "core.figures"),
    output:
        lsa_pdf="figures/lsa_convergence.pdf",
        lsa_png=report(
            "figures/lsa_convergence.png",
            caption="../report/lsa_convergence.rst",
            category="Construction",
        ),
        sparsity_pdf="figures/weight_sparsity.pdf",
        sparsity_png=report(
            "figures/weight_sparsity.png",
            caption="../report/weight_sparsity.rst",
            category="Construction",
        ),
    log:
        "logs/figure_construction.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/construction/figure_construction.py"


rule construction_claims:
    input:
        lsa="results/lsa/headline.json",
        sparsity="results/metrics/weight_sparsity_summary.csv",
        code=lib("construction.claims", "core.claim_rows"),
    output:
        rows="results/claims/construction.pkl",
    log:
        "logs/construction_claims.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        threshold=config["construction"]["macro_threshold"],
    script:
        "../scripts/construction/claims.py"


contribute(
    macros=["results/paper/macros/construction.json"],
    tables=["paper/generated/tab_sparsity.tex"],
    figures=["figures/lsa_convergence.pdf", "figures/weight_sparsity.pdf"],
    benchmarks=[
        *expand("benchmarks/weight_sparsity/{model}.tsv", model=MODELS),
        "benchmarks/lsa_study.tsv",
    ],
    benchmarked=[
        *expand("results/sparsity/{model}.csv", model=MODELS),
        "results/lsa/headline.json",
    ],
    claims=["results/claims/construction.pkl"],
)

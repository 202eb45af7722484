"""Shared core, statistics: the seed papers' headline claims as paired tests, Holm families, power,
verdicts (package iclgd.core: stats, power, claims)."""


rule claims:
    input:
        icl=expand(
            "results/icl/{model}/{dataset}.parquet",
            model=RUN.finetune.models,
            dataset=DATASETS,
        ),
        finetune=FINETUNE_RECORDS,
        finetune_dev=[p.replace(".parquet", ".dev.parquet") for p in FINETUNE_RECORDS],
        curves=[p.replace("claims.csv", "table.parquet") for p in CURVES_CLAIMS],
        compare="results/metrics/icl_vs_gd_examples.parquet",
        lsa="results/lsa/headline.json",
        sparsity="results/metrics/weight_sparsity_summary.csv",
        kernel=KERNEL_SUMMARIES,
        code=lib(
            "core.claims",
            "core.claims_tex",
            "core.crossed",
            "core.stats",
            "core.power",
            "core.paper",
            "icl_vs_gd.claims",
            "icl_vs_gd.finetune_report",
            "icl_vs_gd.compare_report",
            "kernel_regression.claims",
            "label_relationships.claims",
            "label_relationships.curves",
        ),
    output:
        tests="results/stats/icl_vs_gd_tests.csv",
        nonlabel="results/stats/nonlabel_rates.csv",
        claims="results/stats/claims.csv",
        sizing="results/stats/sizing.csv",
        macros="results/paper/macros/claims.json",
        table="paper/generated/tab_claims.tex",
        headline="paper/generated/tab_claims_headline.tex",
        references="paper/generated/tab_claim_references.tex",
    log:
        "logs/stats/claims.log",
    benchmark:
        "benchmarks/claims.tsv"
    conda:
        "../../environment.yml"
    params:
        metrics=config["metrics"],
        claims=config["claims"],
        sizing={
            "data": config["data"],
            "icl": config["icl"],
            "curves": RUN.blocks["curves"],
            "kernel": RUN.blocks["kernel"],
        },
        curves=RUN.blocks["curves"],
        threshold=config["construction"]["macro_threshold"],
        models=list(RUN.finetune.models),
    script:
        "../scripts/core/claims.py"


contribute(
    macros=["results/paper/macros/claims.json"],
    tables=[
        "paper/generated/tab_claims.tex",
        "paper/generated/tab_claims_headline.tex",
        "paper/generated/tab_claim_references.tex",
    ],
)

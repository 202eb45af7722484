"""Shared core, statistics: the seed papers' headline claims as paired tests, Holm families, power,
verdicts (package iclgd.core: stats, power, claims)."""


rule claims:
    input:
        icl=expand(
            "results/icl/{model}/{dataset}.parquet",
            model=finetune_models(),
            dataset=DATASETS,
        ),
        finetune=finetune_records(),
        finetune_dev=[p.replace(".parquet", ".dev.parquet") for p in finetune_records()],
        curves=[p.replace("claims.csv", "table.parquet") for p in curves_claims()],
        compare="results/metrics/icl_vs_gd_examples.parquet",
        lsa="results/lsa/headline.json",
        sparsity="results/metrics/weight_sparsity_summary.csv",
        kernel=kernel_summaries(),
        code=lib("core.claims", "core.stats", "core.power", "label_relationships.curves", "icl_vs_gd.finetune_report", "icl_vs_gd.compare_report", "core.paper"),
    output:
        tests="results/stats/icl_vs_gd_tests.csv",
        anova="results/stats/anova.csv",
        claims="results/stats/claims.csv",
        sizing="results/stats/sizing.csv",
        macros="results/paper/macros/claims.json",
        table="paper/generated/tab_claims.tex",
        references="paper/generated/tab_claim_references.tex",
        anova_table="paper/generated/tab_anova.tex",
    log:
        "logs/stats/claims.log",
    benchmark:
        "benchmarks/claims.tsv"
    conda:
        "../../environment.yml"
    params:
        metrics=config["metrics"],
        claims=config["claims"],
        sizing={k: config[k] for k in ("data", "icl", "curves", "kernel")},
        curves=config["curves"],
        threshold=config["construction"]["macro_threshold"],
        models=finetune_models(),
    script:
        "../scripts/core/claims.py"


contribute(
    macros=["results/paper/macros/claims.json"],
    tables=[
        "paper/generated/tab_claims.tex",
        "paper/generated/tab_claim_references.tex",
        "paper/generated/tab_anova.tex",
    ],
)

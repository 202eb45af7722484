"""Stage 5: accuracy tables with bootstrap CIs."""


rule icl_metrics:
    input:
        records=icl_records(),
        code=lib("metrics"),
    output:
        acc="results/metrics/icl_accuracy.csv",
        per_seed="results/metrics/icl_accuracy_per_seed.csv",
    log:
        "logs/metrics/icl_metrics.log",
    conda:
        "../../environment.yml"
    params:
        metrics=config["metrics"],
    script:
        "../scripts/icl_metrics.py"


rule weight_sparsity:
    input:
        model="resources/models/{model}",
        code=lib("sparsity"),
    output:
        table="results/sparsity/{model}.csv",
        shape="results/sparsity/{model}.json",
    log:
        "logs/metrics/weight_sparsity/{model}.log",
    benchmark:
        "benchmarks/weight_sparsity/{model}.tsv"
    conda:
        "../../environment.yml"
    params:
        thresholds=config["construction"]["thresholds"],
    script:
        "../scripts/weight_sparsity.py"


rule finetune_metrics:
    input:
        records=finetune_records(),
        dev=[p.replace(".parquet", ".dev.parquet") for p in finetune_records()],
        runs=[p.replace(".parquet", ".runs.csv") for p in finetune_records()],
        icl=expand(
            "results/icl/{model}/{dataset}.parquet",
            model=finetune_models(),
            dataset=DATASETS,
        ),
        code=lib("finetune_report", "metrics"),
    output:
        grid="results/metrics/finetune_accuracy_grid.csv",
        selected="results/metrics/finetune_accuracy.csv",
        icl="results/metrics/icl_accuracy_finetuned_seeds.csv",
        convergence="results/metrics/finetune_convergence.csv",
        counts="results/metrics/finetune_convergence_counts.csv",
    log:
        "logs/metrics/finetune_metrics.log",
    conda:
        "../../environment.yml"
    params:
        metrics=config["metrics"],
    script:
        "../scripts/finetune_metrics.py"


rule compare_icl_gd:
    input:
        icl=compared("results/icl/{model}/{dataset}.parquet"),
        permuted=compared("results/icl/{model}/{dataset}.permuted.parquet"),
        finetune=compared("results/finetune/{model}/{dataset}.parquet"),
        finetune_dev=compared("results/finetune/{model}/{dataset}.dev.parquet"),
        code=lib("compare", "compare_report", "finetune_report", "paper"),
    output:
        examples="results/metrics/icl_vs_gd_examples.parquet",
        table="results/metrics/icl_vs_gd_compare.csv",
        macros="results/paper/macros/compare.json",
        tex="paper/generated/tab_compare.tex",
        summary="paper/generated/compare_summary.tex",
        control="results/metrics/icl_vs_gd_control.csv",
        control_tex="paper/generated/tab_control.tex",
    log:
        "logs/metrics/compare_icl_gd.log",
    conda:
        "../../environment.yml"
    params:
        controls={m: config["models"][m]["like"] for m in control_models()},
    script:
        "../scripts/compare_icl_gd.py"


rule dai_metrics:
    input:
        captures=dai_captures(),
        correct=[p.replace(".npz", ".correct.parquet") for p in dai_captures()],
        code=lib("dai", "dai_report", "compare", "stats"),
    output:
        table="results/metrics/dai_metrics.csv",
        layers="results/metrics/dai_layers.csv",
        queries="results/metrics/dai_queries.parquet",
    log:
        "logs/metrics/dai_metrics.log",
    conda:
        "../../environment.yml"
    params:
        dai=config["dai"],
        metrics=config["metrics"],
    script:
        "../scripts/dai_metrics.py"

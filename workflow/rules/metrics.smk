"""Stage 5: accuracy tables with bootstrap CIs."""


rule icl_metrics:
    input:
        icl_records(),
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

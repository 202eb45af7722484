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

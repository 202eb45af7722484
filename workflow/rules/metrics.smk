"""Stage 5: accuracy tables with bootstrap CIs."""


rule icl_metrics:
    input:
        icl_records(),
    output:
        acc="results/metrics/icl_accuracy.csv",
        per_seed="results/metrics/icl_accuracy_per_seed.csv",
    params:
        metrics=config["metrics"],
    log:
        "logs/metrics/icl_metrics.log",
    script:
        "../scripts/icl_metrics.py"

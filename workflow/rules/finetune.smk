"""Stage 4: training. The ICL objective: linear self-attention trained on in-context regression."""


rule lsa_study:
    output:
        convergence="results/lsa/convergence.csv",
        order_sensitivity="results/lsa/order_sensitivity.csv",
        weight_sparsity="results/lsa/weight_sparsity.csv",
        config="results/lsa/config.csv",
        headline="results/lsa/headline.json",
    log:
        "logs/finetune/lsa_study.log",
    benchmark:
        "benchmarks/lsa_study.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    params:
        lsa=config["construction"]["lsa"],
    script:
        "../scripts/lsa_study.py"

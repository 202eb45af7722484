"""Stage 3: in-context learning inference (next-token scores at the answer position)."""


rule icl:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
    output:
        "results/icl/{model}/{dataset}.parquet",
    log:
        "logs/icl/{model}/{dataset}.log",
    benchmark:
        "benchmarks/icl/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=8000,
    params:
        runtime=config["runtime"],
    script:
        "../scripts/run_icl.py"

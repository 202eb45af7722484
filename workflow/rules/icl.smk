"""Stage 3: in-context learning inference (next-token scores at the answer position)."""


rule icl:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
    output:
        "results/icl/{model}/{dataset}.parquet",
    params:
        runtime=config["runtime"],
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=8000,
    log:
        "logs/icl/{model}/{dataset}.log",
    benchmark:
        "benchmarks/icl/{model}/{dataset}.tsv"
    script:
        "../scripts/run_icl.py"

"""Stage 2: the demonstrations of every (dataset, k, seed), fixed once for all later stages."""


rule build_prompts:
    input:
        train="results/data/{dataset}/train.parquet",
        test="results/data/{dataset}/test.parquet",
    output:
        "results/prompts/{dataset}.jsonl",
    log:
        "logs/prompts/{dataset}.log",
    conda:
        "../../environment.yml"
    params:
        spec=dataset_spec,
        icl={k: v for k, v in config["icl"].items() if not k.startswith("permuted_")},
    script:
        "../scripts/build_prompts.py"

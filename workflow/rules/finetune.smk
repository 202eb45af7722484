"""Stage 4: training. The ICL objective: linear self-attention trained on in-context regression."""


rule lsa_study:
    input:
        code=lib("lsa"),
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


rule finetune:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
        train="results/data/{dataset}/train.parquet",
    output:
        records="results/finetune/{model}/{dataset}.parquet",
        dev="results/finetune/{model}/{dataset}.dev.parquet",
        runs="results/finetune/{model}/{dataset}.runs.csv",
        summary="results/finetune/{model}/{dataset}.json",
    log:
        "logs/finetune/{model}/{dataset}.log",
    benchmark:
        "benchmarks/finetune/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=8000,
    params:
        finetune=finetune_grid,
        seeds=config["finetune"]["seeds"],
        runtime=config["runtime"],
        spec=dataset_spec,
    script:
        "../scripts/run_finetune.py"


rule dai_capture:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
    output:
        captures="results/dai/{model}/{dataset}.npz",
        correct="results/dai/{model}/{dataset}.correct.parquet",
        summary="results/dai/{model}/{dataset}.json",
    log:
        "logs/dai/{model}/{dataset}.log",
    benchmark:
        "benchmarks/dai/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=8000,
    params:
        dai=config["dai"],
        runtime=config["runtime"],
    script:
        "../scripts/run_dai.py"


rule order_sensitivity:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
    output:
        records="results/order/{model}/{dataset}/records.parquet",
        per_query="results/order/{model}/{dataset}/per_query.parquet",
        table="results/order/{model}/{dataset}/spread.csv",
        summary="results/order/{model}/{dataset}/summary.json",
    log:
        "logs/order/{model}/{dataset}.log",
    benchmark:
        "benchmarks/order/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=8000,
    params:
        order=config["order"],
        runtime=config["runtime"],
        metrics=config["metrics"],
    script:
        "../scripts/run_order.py"

"""Stage 3: in-context learning inference: next-token scores at the answer position, label curves
(Kossen et al.) and attention captured for the kernel-regression view (Han et al.)."""


rule icl:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
    output:
        records="results/icl/{model}/{dataset}.parquet",
        permuted="results/icl/{model}/{dataset}.permuted.parquet",
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
        reorder={
            "permuted_orders": config["icl"]["permuted_orders"],
            "permuted_queries": config["icl"]["permuted_queries"],
        },
    script:
        "../scripts/run_icl.py"


rule label_curves:
    input:
        train=curves_train,
        model="resources/models/{model}",
    output:
        table="results/label_curves/{model}/{dataset}/table.parquet",
        curves="results/label_curves/{model}/{dataset}/curves.parquet",
        claims="results/label_curves/{model}/{dataset}/claims.csv",
    log:
        "logs/icl/label_curves/{model}/{dataset}.log",
    benchmark:
        "benchmarks/label_curves/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=8000,
    params:
        spec=curves_spec,
        curves=config["curves"],
        metrics=config["metrics"],
        runtime=config["runtime"],
    script:
        "../scripts/run_label_curves.py"


rule kernel_regression:
    input:
        train="results/data/{dataset}/train.parquet",
        test="results/data/{dataset}/test.parquet",
        model="resources/models/{model}",
    output:
        summary="results/kernel/{model}/{dataset}/summary.csv",
        heads="results/kernel/{model}/{dataset}/heads.parquet",
        profile="results/kernel/{model}/{dataset}/profile.parquet",
        probes="results/kernel/{model}/{dataset}/probes.csv",
    log:
        "logs/kernel/{model}/{dataset}.log",
    benchmark:
        "benchmarks/kernel_regression/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=8000,
    params:
        spec=kernel_spec,
        kernel=config["kernel"],
        runtime=config["runtime"],
    script:
        "../scripts/run_kernel.py"

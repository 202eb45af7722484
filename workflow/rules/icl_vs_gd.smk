"""Study: ICL vs gradient descent (Shen, Mishra & Khashabi 2023; package iclgd.icl_vs_gd).

ICL inference -> fine-tuning on the same demonstrations -> metrics -> order sensitivity -> the
hand-constructed "ICL = GD" weights vs real ones; each with its figure and paper numbers.
"""

ICL_RECORDS = expand(
    "results/icl/{model}/{dataset}.parquet", model=MODELS, dataset=DATASETS
)
FINETUNE_RECORDS = expand(
    "results/finetune/{model}/{dataset}.parquet",
    model=RUN.finetune.models,
    dataset=DATASETS,
)
ORDER_TABLES = expand(
    "results/order/{model}/{dataset}/spread.csv",
    model=RUN.order.models,
    dataset=RUN.order.datasets,
)


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
        mem_mb=score_mem_mb,
        gpu=MODEL_GPUS,
    params:
        runtime=config["runtime"],
        n_demos=config["icl"]["n_demos"],
        demo_seeds=config["icl"]["demo_seeds"],
        permuted=config["icl"]["permuted"],
    script:
        "../scripts/icl_vs_gd/run_icl.py"


rule icl_metrics:
    input:
        records=ICL_RECORDS,
        code=lib("core.metrics"),
    output:
        acc="results/metrics/icl_accuracy.csv",
        per_seed="results/metrics/icl_accuracy_per_seed.csv",
    log:
        "logs/metrics/icl_metrics.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        metrics=config["metrics"],
    script:
        "../scripts/icl_vs_gd/icl_metrics.py"


rule figure_icl_accuracy:
    input:
        acc="results/metrics/icl_accuracy.csv",
        code=lib("core.figures"),
    output:
        pdf="figures/icl_accuracy_vs_k.pdf",
        png=report(
            "figures/icl_accuracy_vs_k.png",
            caption="../report/icl_accuracy.rst",
            category="ICL",
        ),
    log:
        "logs/figures/icl_accuracy_vs_k.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/icl_vs_gd/figure_icl_accuracy.py"


rule icl_paper_numbers:
    input:
        acc="results/metrics/icl_accuracy.csv",
        code=lib("icl_vs_gd.icl_report", "core.paper"),
    output:
        macros="results/paper/macros/icl.json",
        table="paper/generated/tab_icl.tex",
        summary="paper/generated/icl_summary.tex",
    log:
        "logs/paper/icl_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/icl_vs_gd/icl_paper_numbers.py"


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
        mem_mb=train_mem_mb,
        gpu=MODEL_GPUS,
    params:
        finetune=lambda wildcards: RUN.finetune_grid(wildcards.model),
        demo_seeds=list(RUN.finetune_demo_seeds),
        n_demos=config["icl"]["n_demos"],
        runtime=config["runtime"],
        spec=dataset_spec,
    script:
        "../scripts/icl_vs_gd/run_finetune.py"


rule finetune_metrics:
    input:
        records=FINETUNE_RECORDS,
        dev=[p.replace(".parquet", ".dev.parquet") for p in FINETUNE_RECORDS],
        runs=[p.replace(".parquet", ".runs.csv") for p in FINETUNE_RECORDS],
        icl=expand(
            "results/icl/{model}/{dataset}.parquet",
            model=RUN.finetune.models,
            dataset=DATASETS,
        ),
        code=lib("icl_vs_gd.finetune_report", "core.metrics"),
    output:
        grid="results/metrics/finetune_accuracy_grid.csv",
        selected="results/metrics/finetune_accuracy.csv",
        icl="results/metrics/icl_accuracy_finetuned_seeds.csv",
        convergence="results/metrics/finetune_convergence.csv",
        counts="results/metrics/finetune_convergence_counts.csv",
    log:
        "logs/metrics/finetune_metrics.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        metrics=config["metrics"],
    script:
        "../scripts/icl_vs_gd/finetune_metrics.py"


rule finetune_paper_numbers:
    input:
        icl="results/metrics/icl_accuracy_finetuned_seeds.csv",
        selected="results/metrics/finetune_accuracy.csv",
        counts="results/metrics/finetune_convergence_counts.csv",
        convergence="results/metrics/finetune_convergence.csv",
        icl_records=expand(
            "results/icl/{model}/{dataset}.parquet",
            model=RUN.finetune.models,
            dataset=DATASETS,
        ),
        code=lib("icl_vs_gd.finetune_report", "core.paper"),
    output:
        csv="results/metrics/icl_vs_finetune.csv",
        nc_csv="results/metrics/finetune_nc_icl_accuracy.csv",
        macros="results/paper/macros/finetune.json",
        table="paper/generated/tab_icl_vs_ft.tex",
        nc_table="paper/generated/tab_ft_nc_icl.tex",
        convergence_table="paper/generated/tab_ft_convergence.tex",
        summary="paper/generated/ft_summary.tex",
    log:
        "logs/paper/finetune_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        grid=RUN.finetune_grid(),
    script:
        "../scripts/icl_vs_gd/finetune_paper_numbers.py"


rule compare_icl_gd:
    input:
        icl=[f"results/icl/{m}/{d}.parquet" for m, d in RUN.compared],
        permuted=[f"results/icl/{m}/{d}.permuted.parquet" for m, d in RUN.compared],
        finetune=[f"results/finetune/{m}/{d}.parquet" for m, d in RUN.compared],
        finetune_dev=[f"results/finetune/{m}/{d}.dev.parquet" for m, d in RUN.compared],
        code=lib(
            "icl_vs_gd.compare",
            "icl_vs_gd.compare_report",
            "icl_vs_gd.finetune_report",
            "core.paper",
        ),
    output:
        examples="results/metrics/icl_vs_gd_examples.parquet",
        table="results/metrics/icl_vs_gd_compare.csv",
        macros="results/paper/macros/compare.json",
        tex="paper/generated/tab_compare.tex",
        summary="paper/generated/compare_summary.tex",
        control="results/metrics/icl_vs_gd_control.csv",
        control_tex="paper/generated/tab_control.tex",
    log:
        "logs/metrics/compare_icl_gd.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        controls=dict(RUN.control_like),
    script:
        "../scripts/icl_vs_gd/compare_icl_gd.py"


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
        mem_mb=train_mem_mb,
        gpu=MODEL_GPUS,
    params:
        order=lambda wildcards: RUN.order_block(wildcards.model),
        runtime=config["runtime"],
        metrics=config["metrics"],
    script:
        "../scripts/icl_vs_gd/run_order.py"


rule figure_order:
    input:
        tables=ORDER_TABLES,
        code=lib("icl_vs_gd.order_report", "core.figures"),
    output:
        pdf="figures/order_sensitivity.pdf",
        png=report(
            "figures/order_sensitivity.png",
            caption="../report/order_sensitivity.rst",
            category="ICL vs GD",
        ),
    log:
        "logs/figures/order_sensitivity.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/icl_vs_gd/figure_order.py"


rule order_paper_numbers:
    input:
        tables=ORDER_TABLES,
        code=lib("icl_vs_gd.order_report", "core.paper"),
    output:
        csv="results/metrics/order_spread.csv",
        macros="results/paper/macros/order.json",
        table="paper/generated/tab_order.tex",
        summary="paper/generated/order_summary.tex",
    log:
        "logs/paper/order_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        order=RUN.blocks["order"],
    script:
        "../scripts/icl_vs_gd/order_paper_numbers.py"


rule lsa_study:
    input:
        code=lib("icl_vs_gd.lsa"),
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
        thresholds=config["construction"]["thresholds"],
    script:
        "../scripts/icl_vs_gd/lsa_study.py"


rule weight_sparsity:
    input:
        model="resources/models/{model}",
        code=lib("icl_vs_gd.sparsity"),
    output:
        table="results/sparsity/{model}.csv",
        shape="results/sparsity/{model}.json",
    log:
        "logs/metrics/weight_sparsity/{model}.log",
    benchmark:
        "benchmarks/weight_sparsity/{model}.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=float32_mem_mb,
    params:
        thresholds=config["construction"]["thresholds"],
    script:
        "../scripts/icl_vs_gd/weight_sparsity.py"


rule construction_paper_numbers:
    input:
        tables=expand("results/sparsity/{model}.csv", model=MODELS),
        shapes=expand("results/sparsity/{model}.json", model=MODELS),
        headline="results/lsa/headline.json",
        lsa_config="results/lsa/config.csv",
        code=lib("icl_vs_gd.construction_report", "icl_vs_gd.sparsity", "core.paper"),
    output:
        summary="results/metrics/weight_sparsity_summary.csv",
        macros="results/paper/macros/construction.json",
        table="paper/generated/tab_sparsity.tex",
    log:
        "logs/paper/construction_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        threshold=config["construction"]["macro_threshold"],
    script:
        "../scripts/icl_vs_gd/construction_paper_numbers.py"


rule figure_construction:
    input:
        convergence="results/lsa/convergence.csv",
        sparsity="results/metrics/weight_sparsity_summary.csv",
        code=lib("icl_vs_gd.construction_report", "icl_vs_gd.lsa", "core.figures"),
    output:
        lsa_pdf="figures/lsa_convergence.pdf",
        lsa_png=report(
            "figures/lsa_convergence.png",
            caption="../report/lsa_convergence.rst",
            category="Construction",
        ),
        sparsity_pdf="figures/weight_sparsity.pdf",
        sparsity_png=report(
            "figures/weight_sparsity.png",
            caption="../report/weight_sparsity.rst",
            category="Construction",
        ),
    log:
        "logs/figures/construction.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/icl_vs_gd/figure_construction.py"


contribute(
    macros=[
        "results/paper/macros/icl.json",
        "results/paper/macros/finetune.json",
        "results/paper/macros/compare.json",
        "results/paper/macros/order.json",
        "results/paper/macros/construction.json",
    ],
    tables=[
        "paper/generated/tab_icl.tex",
        "paper/generated/icl_summary.tex",
        "paper/generated/tab_icl_vs_ft.tex",
        "paper/generated/tab_ft_nc_icl.tex",
        "paper/generated/tab_ft_convergence.tex",
        "paper/generated/ft_summary.tex",
        "paper/generated/tab_compare.tex",
        "paper/generated/compare_summary.tex",
        "paper/generated/tab_control.tex",
        "paper/generated/order_summary.tex",
        "paper/generated/tab_order.tex",
        "paper/generated/tab_sparsity.tex",
    ],
    figures=[
        "figures/icl_accuracy_vs_k.pdf",
        "figures/order_sensitivity.pdf",
        "figures/lsa_convergence.pdf",
        "figures/weight_sparsity.pdf",
    ],
    benchmarks=[
        *expand("benchmarks/icl/{model}/{dataset}.tsv", model=MODELS, dataset=DATASETS),
        *expand(
            "benchmarks/finetune/{model}/{dataset}.tsv",
            model=RUN.finetune.models,
            dataset=DATASETS,
        ),
        *expand("benchmarks/weight_sparsity/{model}.tsv", model=MODELS),
        *expand(
            "benchmarks/order/{model}/{dataset}.tsv",
            model=RUN.order.models,
            dataset=RUN.order.datasets,
        ),
        "benchmarks/lsa_study.tsv",
    ],
    benchmarked=[
        *ICL_RECORDS,
        *FINETUNE_RECORDS,
        *expand("results/sparsity/{model}.csv", model=MODELS),
        *ORDER_TABLES,
        "results/lsa/headline.json",
    ],
)

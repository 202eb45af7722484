"""Study finetune: ICL vs fine-tuning on the same demonstrations (Shen, Mishra & Khashabi 2023; package
iclgd.finetune). Fine-tuning grid per (model, dataset) -> accuracies and convergence -> the crossed
per-setting tests against ICL -> claim rows, tables and paper numbers. Study compare reads its records.
"""

from iclgd.finetune import study as finetune_study

FINETUNE = RUN.studies["finetune"]
FINETUNE_RECORDS = expand(
    "results/finetune/{model}/{dataset}.parquet",
    model=FINETUNE.models,
    dataset=DATASETS,
)
#: ICL's records on exactly the fine-tuned (model, dataset) pairs: the paired half of every comparison
FINETUNED_ICL = expand(
    "results/icl/{model}/{dataset}.parquet", model=FINETUNE.models, dataset=DATASETS
)


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
        finetune=lambda wildcards: finetune_study.grid(RUN, wildcards.model),
        demo_seeds=list(finetune_study.demo_seeds(RUN)),
        n_demos=config["icl"]["n_demos"],
        runtime=config["runtime"],
        spec=dataset_spec,
    script:
        "../scripts/finetune/run_finetune.py"


rule finetune_metrics:
    input:
        records=FINETUNE_RECORDS,
        dev=[p.replace(".parquet", ".dev.parquet") for p in FINETUNE_RECORDS],
        runs=[p.replace(".parquet", ".runs.csv") for p in FINETUNE_RECORDS],
        icl=FINETUNED_ICL,
        code=lib("finetune.report", "core.metrics"),
    output:
        grid="results/metrics/finetune_accuracy_grid.csv",
        selected="results/metrics/finetune_accuracy.csv",
        icl="results/metrics/icl_accuracy_finetuned_seeds.csv",
        convergence="results/metrics/finetune_convergence.csv",
        counts="results/metrics/finetune_convergence_counts.csv",
    log:
        "logs/finetune_metrics.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        metrics=config["metrics"],
    script:
        "../scripts/finetune/finetune_metrics.py"


rule finetune_paper_numbers:
    input:
        icl="results/metrics/icl_accuracy_finetuned_seeds.csv",
        selected="results/metrics/finetune_accuracy.csv",
        counts="results/metrics/finetune_convergence_counts.csv",
        convergence="results/metrics/finetune_convergence.csv",
        icl_records=FINETUNED_ICL,
        code=lib("finetune.report", "core.paper"),
    output:
        csv="results/metrics/icl_vs_finetune.csv",
        nc_csv="results/metrics/finetune_nc_icl_accuracy.csv",
        macros="results/paper/macros/finetune.json",
        table="paper/generated/tab_icl_vs_ft.tex",
        nc_table="paper/generated/tab_ft_nc_icl.tex",
        convergence_table="paper/generated/tab_ft_convergence.tex",
        summary="paper/generated/ft_summary.tex",
    log:
        "logs/finetune_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        grid=finetune_study.grid(RUN),
    script:
        "../scripts/finetune/finetune_paper_numbers.py"


rule finetune_claims:
    input:
        icl=FINETUNED_ICL,
        finetune=FINETUNE_RECORDS,
        finetune_dev=[p.replace(".parquet", ".dev.parquet") for p in FINETUNE_RECORDS],
        code=lib("finetune.claims", "core.claim_rows", "core.crossed", "core.stats"),
    output:
        rows="results/claims/finetune.pkl",
        tests="results/stats/icl_vs_gd_tests.csv",
        nonlabel="results/stats/nonlabel_rates.csv",
        macros="results/paper/macros/finetune_claims.json",
    log:
        "logs/finetune_claims.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        alpha=config["claims"]["alpha"],
        seed=config["claims"]["seed"],
        models=list(FINETUNE.models),
        demo_sets=len(config["icl"]["demo_seeds"]),
    script:
        "../scripts/finetune/claims.py"


contribute(
    macros=[
        "results/paper/macros/finetune.json",
        "results/paper/macros/finetune_claims.json",
    ],
    tables=[
        "paper/generated/tab_icl_vs_ft.tex",
        "paper/generated/tab_ft_nc_icl.tex",
        "paper/generated/tab_ft_convergence.tex",
        "paper/generated/ft_summary.tex",
    ],
    benchmarks=expand(
        "benchmarks/finetune/{model}/{dataset}.tsv",
        model=FINETUNE.models,
        dataset=DATASETS,
    ),
    benchmarked=FINETUNE_RECORDS,
    claims=["results/claims/finetune.pkl"],
)

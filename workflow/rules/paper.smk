"""Stage 8: the paper. Numbers -> macros.json -> macros.tex; tables -> generated .tex; latexmk last."""


rule icl_paper_numbers:
    input:
        acc="results/metrics/icl_accuracy.csv",
    output:
        macros="results/paper/macros/icl.json",
        table="paper/generated/tab_icl.tex",
        summary="paper/generated/icl_summary.tex",
    log:
        "logs/paper/icl_paper_numbers.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/icl_paper_numbers.py"


rule model_provenance:
    input:
        expand("resources/models/{model}", model=MODELS),
    output:
        macros="results/paper/macros/models.json",
        table="paper/generated/tab_models.tex",
    log:
        "logs/paper/model_provenance.log",
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        icl=config["icl"],
        datasets=DATASETS,
        n_test=config["data"]["n_test"],
    script:
        "../scripts/model_provenance.py"


rule macros:
    input:
        macro_files(),
    output:
        json="paper/generated/macros.json",
        tex="paper/generated/macros.tex",
    log:
        "logs/paper/macros.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/render_macros.py"


rule paper:
    input:
        tex=paper_source("main.tex"),
        bib=paper_source("refs.bib"),
        macros="paper/generated/macros.tex",
        tables=paper_tables(),
        figures=paper_figures(),
    output:
        "paper/main.pdf",
    log:
        "logs/paper/latexmk.log",
    benchmark:
        "benchmarks/paper.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/build_paper.py"


rule construction_paper_numbers:
    input:
        tables=expand("results/sparsity/{model}.csv", model=MODELS),
        shapes=expand("results/sparsity/{model}.json", model=MODELS),
        headline="results/lsa/headline.json",
        lsa_config="results/lsa/config.csv",
    output:
        summary="results/metrics/weight_sparsity_summary.csv",
        macros="results/paper/macros/construction.json",
        table="paper/generated/tab_sparsity.tex",
    log:
        "logs/paper/construction_paper_numbers.log",
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        threshold=config["construction"]["macro_threshold"],
    script:
        "../scripts/construction_paper_numbers.py"


rule finetune_paper_numbers:
    input:
        icl="results/metrics/icl_accuracy_finetuned_seeds.csv",
        selected="results/metrics/finetune_accuracy.csv",
    output:
        csv="results/metrics/icl_vs_finetune.csv",
        macros="results/paper/macros/finetune.json",
        table="paper/generated/tab_icl_vs_ft.tex",
        summary="paper/generated/ft_summary.tex",
    log:
        "logs/paper/finetune_paper_numbers.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/finetune_paper_numbers.py"


rule label_paper_numbers:
    input:
        curves_claims(),
    output:
        csv="results/metrics/label_claims.csv",
        macros="results/paper/macros/curves.json",
        table="paper/generated/tab_label_claims.tex",
        summary="paper/generated/curves_summary.tex",
    log:
        "logs/paper/label_paper_numbers.log",
    conda:
        "../../environment.yml"
    params:
        curves=config["curves"],
    script:
        "../scripts/label_paper_numbers.py"


rule run_scale:
    output:
        "paper/generated/scale.tex",
    log:
        "logs/paper/run_scale.log",
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        finetune=config["finetune"],
        curves=config["curves"],
        curves_models=curves_models(),
        finetune_models=finetune_models(),
    script:
        "../scripts/run_scale.py"

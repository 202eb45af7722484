"""Stage 8: the paper. Numbers -> macros.json -> macros.tex; tables -> generated .tex; latexmk last."""


rule icl_paper_numbers:
    input:
        acc="results/metrics/icl_accuracy.csv",
        code=lib("icl_report", "paper"),
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
        models=expand("resources/models/{model}", model=MODELS),
        code=lib("provenance", "paper"),
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
        macros=macro_files(),
        code=lib("paper"),
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
        code=lib("latex"),
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
        code=lib("construction_report", "sparsity", "paper"),
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
        counts="results/metrics/finetune_convergence_counts.csv",
        code=lib("finetune_report", "paper"),
    output:
        csv="results/metrics/icl_vs_finetune.csv",
        macros="results/paper/macros/finetune.json",
        table="paper/generated/tab_icl_vs_ft.tex",
        summary="paper/generated/ft_summary.tex",
    log:
        "logs/paper/finetune_paper_numbers.log",
    conda:
        "../../environment.yml"
    params:
        grid=finetune_grid,
    script:
        "../scripts/finetune_paper_numbers.py"


rule label_paper_numbers:
    input:
        claims=curves_claims(),
        code=lib("curves_report", "labels", "paper"),
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
    input:
        code=lib("provenance"),
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


rule provenance_appendix:
    input:
        # the heavy jobs whose benchmark files it reads (not figures or tables: editing those
        # must not rerun the appendix)
        heavy=benchmarked_outputs(),
        code=lib("provenance", "paper"),
    output:
        tex="paper/generated/appendix_provenance.tex",
        macros="results/paper/macros/provenance.json",
        json="results/paper/provenance.json",
    log:
        "logs/paper/provenance_appendix.log",
    conda:
        "../../environment.yml"
    params:
        commit=GIT_COMMIT,
        config=config,
        configfiles=[os.path.basename(f) for f in workflow.configfiles],
        benchmarks=benchmark_files(),
    script:
        "../scripts/provenance_appendix.py"


rule kernel_paper_numbers:
    input:
        summaries=kernel_summaries(),
        code=lib("kernel", "kernel_report", "paper"),
    output:
        csv="results/metrics/kernel_summary.csv",
        macros="results/paper/macros/kernel.json",
        table="paper/generated/tab_kernel.tex",
        summary="paper/generated/kernel_summary.tex",
    log:
        "logs/paper/kernel_paper_numbers.log",
    conda:
        "../../environment.yml"
    params:
        kernel=config["kernel"],
    script:
        "../scripts/kernel_paper_numbers.py"


rule dai_paper_numbers:
    input:
        table="results/metrics/dai_metrics.csv",
        code=lib("dai", "dai_report", "paper"),
    output:
        macros="results/paper/macros/dai.json",
        table="paper/generated/tab_dai.tex",
        summary="paper/generated/dai_summary.tex",
    log:
        "logs/paper/dai_paper_numbers.log",
    conda:
        "../../environment.yml"
    params:
        dai=config["dai"],
    script:
        "../scripts/dai_paper_numbers.py"


rule order_paper_numbers:
    input:
        tables=order_tables(),
        code=lib("order_report", "paper"),
    output:
        csv="results/metrics/order_spread.csv",
        macros="results/paper/macros/order.json",
        summary="paper/generated/order_summary.tex",
    log:
        "logs/paper/order_paper_numbers.log",
    conda:
        "../../environment.yml"
    params:
        order=config["order"],
    script:
        "../scripts/order_paper_numbers.py"

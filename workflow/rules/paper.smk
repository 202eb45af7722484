"""Shared core, the paper: numbers -> macros.json -> macros.tex; tables -> generated .tex; latexmk last."""

contribute(
    macros=["results/paper/macros/models.json", "results/paper/macros/provenance.json"],
    tables=[
        "paper/generated/tab_models.tex",
        "paper/generated/scale.tex",
        "paper/generated/appendix_provenance.tex",
    ],
    benchmarks=expand("benchmarks/prepare_model/{model}.tsv", model=MODELS),
    benchmarked=expand("resources/models/{model}", model=MODELS),
)


rule model_provenance:
    input:
        models=expand("resources/models/{model}", model=MODELS),
        code=lib("core.provenance", "core.paper"),
    output:
        macros="results/paper/macros/models.json",
        table="paper/generated/tab_models.tex",
    log:
        "logs/model_provenance.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        models=MODELS,
        icl=config["icl"],
        datasets=DATASETS,
        n_test=config["data"]["n_test"],
    script:
        "../scripts/core/model_provenance.py"


rule run_scale:
    input:
        code=lib("core.provenance"),
    output:
        "paper/generated/scale.tex",
    log:
        "logs/run_scale.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        text=provenance.scale_paragraph(RUN),
    script:
        "../scripts/core/run_scale.py"


rule provenance_appendix:
    input:
        # the heavy jobs whose benchmark files it reads (not figures or tables: editing those
        # must not rerun the appendix)
        heavy=lambda wildcards: PAPER["benchmarked"],
        code=lib("core.provenance", "core.paper"),
    output:
        tex="paper/generated/appendix_provenance.tex",
        macros="results/paper/macros/provenance.json",
        json="results/paper/provenance.json",
    log:
        "logs/provenance_appendix.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        commit=GIT_COMMIT,
        config=config,
        configfiles=[os.path.basename(f) for f in workflow.configfiles],
        benchmarks=lambda wildcards: PAPER["benchmarks"],
    script:
        "../scripts/core/provenance_appendix.py"


rule macros:
    input:
        macros=lambda wildcards: PAPER["macros"],
        code=lib("core.paper"),
    output:
        json="paper/generated/macros.json",
        tex="paper/generated/macros.tex",
    log:
        "logs/macros.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/core/render_macros.py"


rule paper:
    input:
        tex=paper_source("main.tex"),
        bib=paper_source("refs.bib"),
        sty=paper_source("iclgd.sty"),
        macros="paper/generated/macros.tex",
        tables=lambda wildcards: PAPER["tables"],
        figures=lambda wildcards: PAPER["figures"],
        code=lib("core.latex"),
    output:
        "paper/main.pdf",
    log:
        "logs/paper.log",
    benchmark:
        "benchmarks/paper.tsv"
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/core/build_paper.py"


rule check_paper:
    """The paper as its reader sees it (src/iclgd/core/build_check.py): no float too large, no overfull box,
    no undefined reference, every page renders, no float more than a page after its first reference.
    """
    input:
        pdf="paper/main.pdf",
        code=lib("core.build_check"),
    output:
        "results/paper/build_check.json",
    log:
        "logs/check_paper.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/core/check_paper.py"

"""Study: ICL learns label relationships but is not conventional learning (Kossen et al. 2023;
package iclgd.label_relationships).

Learning curves under label conditions -> figure and paper numbers."""

from iclgd.label_relationships import labels

CURVES_CLAIMS = [
    f"results/label_curves/{model}/{dataset}/claims.csv"
    for model, dataset in RUN.curves_pairs
]


rule label_curves:
    input:
        # the novel task's contexts come from each source's training split, in order
        train=lambda w: (
            expand(
                "results/data/{d}/train.parquet",
                d=config["curves"]["novel"]["sources"],
            )
            if w.dataset == RUN.novel
            else f"results/data/{w.dataset}/train.parquet"
        ),
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
        mem_mb=score_mem_mb,
        gpu=MODEL_GPUS,
    params:
        # a registry dataset, or the novel source-identification task built from its sources
        spec=lambda w: (
            labels.novel_spec(config["curves"]["novel"], REGISTRY)
            if w.dataset == RUN.novel
            else named_spec(w)
        ),
        curves=RUN.blocks["curves"],
        metrics=config["metrics"],
        runtime=config["runtime"],
    script:
        "../scripts/label_relationships/run_label_curves.py"


rule figure_label_curves:
    input:
        curves=[p.replace("claims.csv", "table.parquet") for p in CURVES_CLAIMS],
        code=lib("label_relationships.curves_report", "core.figures"),
    output:
        pdf="figures/label_curves.pdf",
        png=report(
            "figures/label_curves.png",
            caption="../report/label_curves.rst",
            category="Label relationships",
        ),
    log:
        "logs/figures/label_curves.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/label_relationships/figure_label_curves.py"


rule label_paper_numbers:
    input:
        claims=CURVES_CLAIMS,
        code=lib(
            "label_relationships.curves_report",
            "label_relationships.labels",
            "core.paper",
        ),
    output:
        csv="results/metrics/label_claims.csv",
        macros="results/paper/macros/curves.json",
        table="paper/generated/tab_label_claims.tex",
        summary="paper/generated/curves_summary.tex",
    log:
        "logs/paper/label_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        curves=RUN.blocks["curves"],
    script:
        "../scripts/label_relationships/label_paper_numbers.py"


contribute(
    macros=["results/paper/macros/curves.json"],
    tables=[
        "paper/generated/tab_label_claims.tex",
        "paper/generated/curves_summary.tex",
    ],
    figures=["figures/label_curves.pdf"],
    benchmarks=[f"benchmarks/label_curves/{m}/{d}.tsv" for m, d in RUN.curves_pairs],
    benchmarked=[p.replace("claims.csv", "table.parquet") for p in CURVES_CLAIMS],
)

"""Study: ICL learns label relationships but is not conventional learning (Kossen et al. 2023;
package iclgd.label_relationships).

Learning curves under label conditions -> figure and paper numbers."""

from iclgd.labels import conditions as labels
from iclgd.labels.study import novel_name

NOVEL = novel_name(RUN)

CURVES_CLAIMS = [
    f"results/label_curves/{model}/{dataset}/claims.csv"
    for model, dataset in RUN.pairs["labels"]
]


rule label_curves:
    input:
        # the novel task's contexts come from each source's training split, in order
        train=lambda w: (
            expand(
                "results/data/{d}/train.parquet",
                d=config["labels"]["novel"]["sources"],
            )
            if w.dataset == NOVEL
            else f"results/data/{w.dataset}/train.parquet"
        ),
        model="resources/models/{model}",
    output:
        table="results/label_curves/{model}/{dataset}/table.parquet",
        curves="results/label_curves/{model}/{dataset}/curves.parquet",
        claims="results/label_curves/{model}/{dataset}/claims.csv",
    log:
        "logs/label_curves/{model}/{dataset}.log",
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
            labels.novel_spec(config["labels"]["novel"], REGISTRY)
            if w.dataset == NOVEL
            else named_spec(w)
        ),
        curves=RUN.blocks["labels"],
        metrics=config["metrics"],
        runtime=config["runtime"],
    script:
        "../scripts/labels/run_label_curves.py"


rule figure_label_curves:
    input:
        curves=[p.replace("claims.csv", "table.parquet") for p in CURVES_CLAIMS],
        code=lib("labels.report", "core.figures"),
    output:
        pdf="figures/label_curves.pdf",
        png=report(
            "figures/label_curves.png",
            caption="../report/label_curves.rst",
            category="Label relationships",
        ),
    log:
        "logs/figure_label_curves.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/labels/figure_label_curves.py"


rule label_paper_numbers:
    input:
        claims=CURVES_CLAIMS,
        code=lib(
            "labels.report",
            "labels.conditions",
            "core.paper",
        ),
    output:
        csv="results/metrics/label_claims.csv",
        macros="results/paper/macros/curves.json",
        table="paper/generated/tab_label_claims.tex",
        summary="paper/generated/curves_summary.tex",
    log:
        "logs/label_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        curves=RUN.blocks["labels"],
    script:
        "../scripts/labels/label_paper_numbers.py"


rule labels_claims:
    input:
        tables=[p.replace("claims.csv", "table.parquet") for p in CURVES_CLAIMS],
        code=lib("labels.claims", "core.claim_rows", "core.stats"),
    output:
        rows="results/claims/labels.pkl",
    log:
        "logs/labels_claims.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        labels=RUN.blocks["labels"],
        metrics=config["metrics"],
        alpha=config["claims"]["alpha"],
    script:
        "../scripts/labels/claims.py"


contribute(
    claims=["results/claims/labels.pkl"],
    macros=["results/paper/macros/curves.json"],
    tables=[
        "paper/generated/tab_label_claims.tex",
        "paper/generated/curves_summary.tex",
    ],
    figures=["figures/label_curves.pdf"],
    benchmarks=[f"benchmarks/label_curves/{m}/{d}.tsv" for m, d in RUN.pairs["labels"]],
    benchmarked=[p.replace("claims.csv", "table.parquet") for p in CURVES_CLAIMS],
)

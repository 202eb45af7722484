"""Study: ICL learns label relationships but is not conventional learning (Kossen et al. 2023;
package iclgd.label_relationships).

Learning curves under label conditions -> figures and paper numbers."""

from iclgd.labels import conditions as labels
from iclgd.labels.study import novel_name

NOVEL = novel_name(RUN)

LABELS_CLAIMS = [f"results/labels/{m}/{d}/claims.csv" for m, d in RUN.pairs["labels"]]
LABELS_MODELS = list(dict.fromkeys(m for m, _ in RUN.pairs["labels"]))


rule labels:
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
        table="results/labels/{model}/{dataset}/table.parquet",
        curves="results/labels/{model}/{dataset}/curves.parquet",
        claims="results/labels/{model}/{dataset}/claims.csv",
    log:
        "logs/labels/{model}/{dataset}.log",
    benchmark:
        "benchmarks/labels/{model}/{dataset}.tsv"
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
        "../scripts/labels/run_labels.py"


rule figure_labels:
    input:
        curves=[p.replace("claims.csv", "table.parquet") for p in LABELS_CLAIMS],
        code=lib("labels.report", "core.figures"),
    output:
        pdf="figures/label_curves.pdf",
        png=report(
            "figures/label_curves.png",
            caption="../report/label_curves.rst",
            category="Label relationships",
        ),
    log:
        "logs/figure_labels.log",
    localrule: True
    conda:
        "../../environment.yml"
    script:
        "../scripts/labels/figure_labels.py"


rule figure_label_size:
    input:
        claims=LABELS_CLAIMS,
        models=expand("resources/models/{model}", model=LABELS_MODELS),
        code=lib(
            "labels.size_panel", "labels.claims", "core.model_size", "core.figures"
        ),
    output:
        pdf="figures/label_size.pdf",
        png=report(
            "figures/label_size.png",
            caption="../report/label_size.rst",
            category="Label relationships",
        ),
        csv="results/metrics/label_size.csv",
    log:
        "logs/figure_label_size.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        registry={m: config["models"][m] for m in LABELS_MODELS},
    script:
        "../scripts/labels/figure_label_size.py"


rule labels_paper_numbers:
    input:
        claims=LABELS_CLAIMS,
        code=lib("labels.report", "labels.conditions", "core.paper"),
    output:
        csv="results/metrics/label_claims.csv",
        macros="results/paper/macros/labels.json",
        table="paper/generated/tab_label_claims.tex",
        summary="paper/generated/labels_summary.tex",
    log:
        "logs/labels_paper_numbers.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        curves=RUN.blocks["labels"],
    script:
        "../scripts/labels/labels_paper_numbers.py"


rule labels_claims:
    input:
        tables=[p.replace("claims.csv", "table.parquet") for p in LABELS_CLAIMS],
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
    macros=["results/paper/macros/labels.json"],
    tables=[
        "paper/generated/tab_label_claims.tex",
        "paper/generated/labels_summary.tex",
    ],
    figures=["figures/label_curves.pdf", "figures/label_size.pdf"],
    benchmarks=[f"benchmarks/labels/{m}/{d}.tsv" for m, d in RUN.pairs["labels"]],
    benchmarked=[p.replace("claims.csv", "table.parquet") for p in LABELS_CLAIMS],
)

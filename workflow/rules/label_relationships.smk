"""Study: ICL learns label relationships but is not conventional learning (Kossen et al. 2023;
package iclgd.label_relationships).

Learning curves under label conditions -> figure and paper numbers."""

from iclgd.label_relationships import labels



def curves_models():
    chosen = config["curves"].get("models") or MODELS
    return [m for m in MODELS if m in chosen]


def novel_name():
    return (
        config["curves"].get("novel", {}).get("name", labels.DEFAULTS["novel"]["name"])
    )


def curves_spec(wildcards):
    """The dataset's registry entry, or the novel source-identification task built from its sources."""
    if wildcards.dataset == novel_name():
        return labels.novel_spec(config["curves"].get("novel", {}), REGISTRY)
    return {"name": wildcards.dataset, **REGISTRY[wildcards.dataset]}


def curves_train(wildcards):
    """Training split(s) the contexts are drawn from (the novel task: each source's, in order)."""
    if wildcards.dataset == novel_name():
        sources = labels.settings(config["curves"])["novel"]["sources"]
        return expand("results/data/{dataset}/train.parquet", dataset=sources)
    return f"results/data/{wildcards.dataset}/train.parquet"


def curves_claims():
    return expand(
        "results/label_curves/{model}/{dataset}/claims.csv",
        model=curves_models(),
        dataset=config["curves"]["datasets"],
    )



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
        "../scripts/label_relationships/run_label_curves.py"


rule figure_label_curves:
    input:
        curves=[p.replace("claims.csv", "curves.parquet") for p in curves_claims()],
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
    conda:
        "../../environment.yml"
    script:
        "../scripts/label_relationships/figure_label_curves.py"


rule label_paper_numbers:
    input:
        claims=curves_claims(),
        code=lib("label_relationships.curves_report", "label_relationships.labels", "core.paper"),
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
        "../scripts/label_relationships/label_paper_numbers.py"


contribute(
    macros=["results/paper/macros/curves.json"],
    tables=[
        "paper/generated/tab_label_claims.tex",
        "paper/generated/curves_summary.tex",
    ],
    figures=["figures/label_curves.pdf"],
    benchmarks=expand(
        "benchmarks/label_curves/{model}/{dataset}.tsv",
        model=curves_models(),
        dataset=config["curves"]["datasets"],
    ),
    benchmarked=[p.replace("claims.csv", "table.parquet") for p in curves_claims()],
)

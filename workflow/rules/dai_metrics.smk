"""Study: Dai et al. 2023's ICL-vs-fine-tuning metrics (package iclgd.dai_metrics).

Attention captured under zero-shot, ICL and Dai's fine-tuning -> Rec2FTP, SimAOU, SimAM ->
figure and paper numbers."""


def dai_models():
    """Models Dai's metrics run on: `dai.models` ([] = every used model, then every control model)."""
    known = [*MODELS, *config.get("control", {}).get("models", [])]
    chosen = config["dai"].get("models") or known
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise ValueError(
            f"config key dai.models: {unknown} are neither in use_models nor in control.models"
        )
    return list(dict.fromkeys(chosen))


def dai_captures():
    """The dai_capture outputs: every dai model on `dai.datasets`, except that control models run only
    on those of them in `control.datasets` (the control's budget). Reads their prompt sets (dai.k of icl.k).
    """
    cfg = config["dai"]
    missing = [d for d in cfg["datasets"] if d not in DATASETS]
    if missing:
        raise ValueError(
            f"config key dai.datasets: {missing} are not in datasets {DATASETS}"
        )
    if not set(cfg["k"]) <= set(config["icl"]["k"]) or not set(cfg["seeds"]) <= set(
        config["icl"]["seeds"]
    ):
        raise ValueError(
            "config keys dai.k / dai.seeds must be values of icl.k / icl.seeds"
        )
    control = config.get("control", {})
    pattern = "results/dai/{model}/{dataset}.npz"
    controls = [m for m in dai_models() if m in control.get("models", [])]
    trained = [m for m in dai_models() if m not in controls]
    return expand(pattern, model=trained, dataset=cfg["datasets"]) + expand(
        pattern,
        model=controls,
        dataset=[d for d in cfg["datasets"] if d in control.get("datasets", [])],
    )



rule dai_capture:
    input:
        prompts="results/prompts/{dataset}.jsonl",
        model="resources/models/{model}",
    output:
        captures="results/dai/{model}/{dataset}.npz",
        correct="results/dai/{model}/{dataset}.correct.parquet",
        summary="results/dai/{model}/{dataset}.json",
    log:
        "logs/dai/{model}/{dataset}.log",
    benchmark:
        "benchmarks/dai/{model}/{dataset}.tsv"
    conda:
        "../../environment.yml"
    threads: config["runtime"]["threads"]
    resources:
        mem_mb=8000,
    params:
        dai=config["dai"],
        runtime=config["runtime"],
    script:
        "../scripts/dai_metrics/run_dai.py"


rule dai_metrics:
    input:
        captures=dai_captures(),
        correct=[p.replace(".npz", ".correct.parquet") for p in dai_captures()],
        code=lib("dai_metrics.dai", "dai_metrics.dai_report", "icl_vs_gd.compare", "core.stats"),
    output:
        table="results/metrics/dai_metrics.csv",
        layers="results/metrics/dai_layers.csv",
        queries="results/metrics/dai_queries.parquet",
    log:
        "logs/metrics/dai_metrics.log",
    conda:
        "../../environment.yml"
    params:
        dai=config["dai"],
        metrics=config["metrics"],
    script:
        "../scripts/dai_metrics/dai_metrics.py"


rule figure_dai:
    input:
        layers="results/metrics/dai_layers.csv",
        code=lib("dai_metrics.dai_report", "core.figures"),
    output:
        pdf="figures/dai_layers.pdf",
        png=report(
            "figures/dai_layers.png",
            caption="../report/dai_layers.rst",
            category="ICL vs GD",
        ),
    log:
        "logs/figures/dai_layers.log",
    conda:
        "../../environment.yml"
    script:
        "../scripts/dai_metrics/figure_dai.py"


rule dai_paper_numbers:
    input:
        table="results/metrics/dai_metrics.csv",
        code=lib("dai_metrics.dai", "dai_metrics.dai_report", "core.paper"),
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
        "../scripts/dai_metrics/dai_paper_numbers.py"


contribute(
    macros=["results/paper/macros/dai.json"],
    tables=["paper/generated/tab_dai.tex", "paper/generated/dai_summary.tex"],
    figures=["figures/dai_layers.pdf"],
    benchmarks=[
        p.replace("results/dai", "benchmarks/dai").replace(".npz", ".tsv")
        for p in dai_captures()
    ],
    benchmarked=dai_captures(),
)

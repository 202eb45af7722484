"""Helpers shared by every stage: config look-ups and the list of final targets."""

from iclgd import labels, provenance
from iclgd.config import check_config

REGISTRY = check_config(config, workflow.basedir)
DATASETS = config["datasets"]
MODELS = config["use_models"]
HEAVY = dict(threads=config["runtime"]["threads"])
GIT_COMMIT = provenance.git_commit(workflow.basedir)


def model_spec(wildcards):
    return config["models"][wildcards.model]


def dataset_spec(wildcards):
    return REGISTRY[wildcards.dataset]


def finetune_grid(wildcards):
    """The `finetune` config block minus the pipeline-level keys (the library's grid), with the
    model's own learning-rate grid from `lrs_by_model` when it has one."""
    block = config["finetune"]
    grid = {
        k: v for k, v in block.items() if k not in ("models", "seeds", "lrs_by_model")
    }
    by_model = block.get("lrs_by_model") or {}
    if "model" in wildcards.keys() and wildcards.model in by_model:
        grid["lrs"] = by_model[wildcards.model]
    return grid


def finetune_models():
    """Models fine-tuned by default: `finetune.models` (the CPU budget), else every used model."""
    chosen = config["finetune"].get("models") or MODELS
    return [m for m in MODELS if m in chosen]


def finetune_records():
    return expand(
        "results/finetune/{model}/{dataset}.parquet",
        model=finetune_models(),
        dataset=DATASETS,
    )


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


def icl_records():
    return expand(
        "results/icl/{model}/{dataset}.parquet", model=MODELS, dataset=DATASETS
    )


def kernel_models():
    """Models the kernel stage runs: `kernel.models` ([] = every used model)."""
    chosen = config["kernel"].get("models") or MODELS
    return [m for m in MODELS if m in chosen]


def kernel_summaries():
    return expand(
        "results/kernel/{model}/{dataset}/summary.csv",
        model=kernel_models(),
        dataset=config["kernel"]["datasets"],
    )


def kernel_spec(wildcards):
    return {"name": wildcards.dataset, **REGISTRY[wildcards.dataset]}


def order_models():
    """Models the order experiment runs: `order.models` ([] = every used model)."""
    chosen = config["order"].get("models") or MODELS
    unknown = [m for m in chosen if m not in MODELS]
    if unknown:
        raise ValueError(
            f"config key order.models: {unknown} are not in use_models {MODELS}"
        )
    return [m for m in MODELS if m in chosen]


def order_datasets():
    """The order experiment's datasets; it reads their prompt sets (icl.k / icl.seeds)."""
    cfg = config["order"]
    missing = [d for d in cfg["datasets"] if d not in DATASETS]
    if missing:
        raise ValueError(
            f"config key order.datasets: {missing} are not in datasets {DATASETS}"
        )
    if (
        cfg["k"] not in config["icl"]["k"]
        or cfg["prompt_seed"] not in config["icl"]["seeds"]
    ):
        raise ValueError(
            "config keys order.k / order.prompt_seed must be values of icl.k / icl.seeds"
        )
    return cfg["datasets"]


def order_tables():
    return expand(
        "results/order/{model}/{dataset}/spread.csv",
        model=order_models(),
        dataset=order_datasets(),
    )


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


def final_outputs():
    return ["paper/main.pdf", *paper_figures()]


def tokenizer_spec(wildcards):
    """The registry entry whose tokenizer a tiny test model borrows (empty for real models)."""
    name = config["models"][wildcards.model].get("tokenizer")
    return {name: config["models"][name]} if name else {}


def untrained_like(wildcards):
    """An untrained control model needs the prepared model it copies (architecture, tokenizer)."""
    spec = config["models"][wildcards.model]
    if spec["source"] != "untrained":
        return {}
    return {"like": f"resources/models/{spec['like']}"}


def control_models():
    return config.get("control", {}).get("models", [])


def compared(pattern):
    """`pattern` for every (model, dataset) the ICL-vs-GD comparison covers: the fine-tuned models on
    all datasets, and the untrained controls on `control.datasets`."""
    return expand(pattern, model=finetune_models(), dataset=DATASETS) + expand(
        pattern,
        model=control_models(),
        dataset=config.get("control", {}).get("datasets", []),
    )


def macro_files():
    return [
        "results/paper/macros/icl.json",
        "results/paper/macros/models.json",
        "results/paper/macros/construction.json",
        "results/paper/macros/finetune.json",
        "results/paper/macros/curves.json",
        "results/paper/macros/claims.json",
        "results/paper/macros/provenance.json",
        "results/paper/macros/compare.json",
        "results/paper/macros/kernel.json",
        "results/paper/macros/dai.json",
        "results/paper/macros/order.json",
    ]


def paper_tables():
    return [
        "paper/generated/tab_icl.tex",
        "paper/generated/icl_summary.tex",
        "paper/generated/tab_models.tex",
        "paper/generated/tab_sparsity.tex",
        "paper/generated/tab_icl_vs_ft.tex",
        "paper/generated/ft_summary.tex",
        "paper/generated/tab_label_claims.tex",
        "paper/generated/curves_summary.tex",
        "paper/generated/scale.tex",
        "paper/generated/tab_claims.tex",
        "paper/generated/tab_claim_references.tex",
        "paper/generated/tab_anova.tex",
        "paper/generated/appendix_provenance.tex",
        "paper/generated/tab_compare.tex",
        "paper/generated/compare_summary.tex",
        "paper/generated/tab_control.tex",
        "paper/generated/tab_kernel.tex",
        "paper/generated/kernel_summary.tex",
        "paper/generated/tab_dai.tex",
        "paper/generated/dai_summary.tex",
        "paper/generated/order_summary.tex",
    ]


def paper_figures():
    return [
        "figures/icl_accuracy_vs_k.pdf",
        "figures/lsa_convergence.pdf",
        "figures/weight_sparsity.pdf",
        "figures/label_curves.pdf",
        "figures/kernel_heads.pdf",
        "figures/dai_layers.pdf",
        "figures/order_sensitivity.pdf",
    ]


def benchmark_files():
    """This run's benchmark files upstream of the paper, for the provenance appendix."""
    curves = expand(
        "benchmarks/label_curves/{model}/{dataset}.tsv",
        model=curves_models(),
        dataset=config["curves"]["datasets"],
    )
    return [
        *expand("benchmarks/prepare_model/{model}.tsv", model=MODELS),
        *expand("benchmarks/icl/{model}/{dataset}.tsv", model=MODELS, dataset=DATASETS),
        *expand(
            "benchmarks/finetune/{model}/{dataset}.tsv",
            model=finetune_models(),
            dataset=DATASETS,
        ),
        *curves,
        *expand("benchmarks/weight_sparsity/{model}.tsv", model=MODELS),
        *expand(
            "benchmarks/kernel_regression/{model}/{dataset}.tsv",
            model=kernel_models(),
            dataset=config["kernel"]["datasets"],
        ),
        *expand(
            "benchmarks/order/{model}/{dataset}.tsv",
            model=order_models(),
            dataset=order_datasets(),
        ),
        *[
            p.replace("results/dai", "benchmarks/dai").replace(".npz", ".tsv")
            for p in dai_captures()
        ],
        "benchmarks/lsa_study.tsv",
    ]


def benchmarked_outputs():
    """One output of every job in `benchmark_files()`, so the appendix runs after all of them."""
    return [
        *expand("resources/models/{model}", model=MODELS),
        *icl_records(),
        *finetune_records(),
        *[p.replace("claims.csv", "table.parquet") for p in curves_claims()],
        *kernel_summaries(),
        *expand("results/sparsity/{model}.csv", model=MODELS),
        *order_tables(),
        *dai_captures(),
        "results/lsa/headline.json",
    ]


def lib(*modules):
    """Library sources whose edits rerun a rule (mtime trigger), so results follow the code.

    Only the cheap rules list them. Inference, fine-tuning and label curves do not, so a refactor of
    the library never silently reruns an hour of compute; after changing scoring, finetune, curves or
    models code, rerun those with `--forcerun icl finetune label_curves`.
    """
    return [os.path.join(workflow.basedir, "src", "iclgd", f"{m}.py") for m in modules]


def paper_source(name):
    """The hand-written paper sources live in the repository, whatever the working directory."""
    return os.path.join(workflow.basedir, "paper", name)

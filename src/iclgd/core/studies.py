"""The study registry: each study declares itself, so that core, the claims table and the paper name none.

A study is one package `iclgd.<name>` whose module `study.py` defines `STUDY = StudySpec(...)`, one rule file
`workflow/rules/<name>.smk` and its config block `<name>` (config/schema.yaml). The name is the study's one
name: package, rule file, scripts, tests, config block, model rule, `results/<name>/` and
`results/claims/<name>.pkl` (claim families keep the seed paper's name: whose claim a row tests). `discover()` finds the studies by scanning iclgd's subpackages -- the tree is the registry, as in
lm-evaluation-harness -- so adding one edits no core file. config.resolve asks each study for its block as
it runs it, the start-up checks for its prompts and training settings, the claims table for the config key
that sizes each of its claim rows; its rule file registers its paper outputs and claim rows (common.smk).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:  # light imports only: the workflow calls this at parse time
    from iclgd.core.config import Run, Scope

#: Subpackages of iclgd that are not studies.
NOT_STUDIES = ("core", "tools")


def _none(*_: Any) -> list:
    """The empty answer of a hook a study does not need."""
    return []


def _no_check(*_: Any) -> None:
    """Nothing to check."""


@dataclass(frozen=True)
class StudySpec:
    """What a study declares. Every hook is optional; a study without a config block sets `block=False`.

    - `check(config)`: cross-key checks of its block a schema cannot make (raise ConfigError).
    - `dataset_keys(config)`: {config key: dataset names} that must exist in the dataset registry.
    - `model_keys(config)`: {config key: model names} that must be registered models.
    - `choose_datasets(config, notes)`: its datasets, where not `<name>.datasets` against `datasets`.
    - `reads(config, study)`: datasets it reads beyond `datasets` (their registry entries join the run's).
    - `resolve(scope)`: (its block as the run reads it, extras for Run.extra), given `scope` (config.Scope:
      the chosen models and datasets, the registry, notes); by default the block with its lists resolved.
    - `pairs(run)`: the (model, dataset) runs of its heaviest rule (default: models x datasets minus skip).
    - `prompt_needs(block)`: (n_demos, demo seeds) it reads from the shared prompt sets beyond icl's.
    - `demands(run, config)`: its prompts as context.Demand (start-up context-window check).
    - `training(run)`: (config key, model, optimizer, subset, micro-batch tokens, its `<key>.skip` entry) of
      its training runs (the start-up memory check names the entry that leaves one out).
    - `knob(row, cfg)`: (config key, current value, planning units per unit of it, units the key counts on top
      of) setting the N of one of its claim rows (results/stats/sizing.csv; iclgd.core.claims.sizing).
    - `scale(run)`: (sentences on the scale it ran at, sentences on what it left out) for the paper's
      limitations (iclgd.core.provenance.scale_paragraph).
    - `renamed`: its config keys' old names, so that a config still using one gets an error naming the new.
    """

    name: str
    title: str
    position: int  # the run's order of studies: rule files, claim rows, paper sections
    block: bool = True
    with_controls: bool = False  # its models are chosen among use_models and the untrained controls
    with_datasets: bool = True  # its block's `datasets` list names registry datasets ([] = all of `datasets`)
    check: Callable[..., None] = _no_check
    dataset_keys: Callable[[dict], Mapping[str, Sequence[str]]] = lambda config: {}
    model_keys: Callable[[dict], Mapping[str, Sequence[str]]] = lambda config: {}
    choose_datasets: Callable[[dict, list], tuple] | None = None
    reads: Callable[..., list] = _none
    resolve: Callable[[Scope], tuple[dict, dict]] | None = None
    pairs: Callable[[Run], tuple] | None = None
    prompt_needs: Callable[[dict], tuple[Sequence[int], Sequence[int]]] = lambda block: ((), ())
    demands: Callable[..., list] = _none
    training: Callable[..., list] = _none
    knob: Callable[..., tuple[str, float, float, float]] | None = None
    scale: Callable[..., tuple[list[str], list[str]]] = lambda run: ([], [])
    renamed: Mapping[str, str] = field(default_factory=dict)  # old top-level config key -> its new name


def prompt_sets_knob(row: Any, cfg: dict[str, Any]) -> tuple[str, float, float, float]:
    """The knob of a claim over ICL's prompt sets: demonstration sets per setting are the unit of replication,
    one per seed of the shared prompt grid (icl.demo_seeds)."""
    return "icl.demo_seeds (count)", len(cfg["icl"]["demo_seeds"]), 1.0, 0.0


def discover(package: str = "iclgd") -> tuple[StudySpec, ...]:
    """Every study under `package`, in their declared order: the subpackages (but core and tools) that hold a
    `study` module defining STUDY."""
    root = importlib.import_module(package)
    found = []
    for info in pkgutil.iter_modules(root.__path__):
        if not info.ispkg or info.name in NOT_STUDIES:
            continue
        try:
            module = importlib.import_module(f"{package}.{info.name}.study")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{info.name}.study":
                raise
            continue
        spec = getattr(module, "STUDY", None)
        if not isinstance(spec, StudySpec) or spec.name != info.name:
            raise TypeError(f"{module.__file__}: STUDY must be a StudySpec named {info.name!r}")
        found.append(spec)
    return tuple(sorted(found, key=lambda s: (s.position, s.name)))


def by_name(studies: Sequence[StudySpec]) -> dict[str, StudySpec]:
    return {s.name: s for s in studies}

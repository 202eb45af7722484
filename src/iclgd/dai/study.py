"""Study dai declares itself (iclgd.core.studies): it runs on the models in use and the untrained controls (a
control only on control.datasets), on prompt sets with demonstrations among icl's."""

from __future__ import annotations

from iclgd.core.config import ConfigError, Run, Scope, restrict
from iclgd.core.studies import StudySpec


def _resolve(scope: Scope) -> tuple[dict, dict]:
    """The dai block with the prompt sets it reads: n_demos and demo_seeds within icl's."""
    icl, cfg, study, notes = scope.config["icl"], scope.config["dai"], scope.study, scope.notes
    with_demos = [k for k in icl["n_demos"] if k >= 1]
    if not with_demos:
        raise ConfigError("config key icl.n_demos: Dai's metrics and fine-tuning need a value >= 1")
    block = {**cfg, "models": list(study.models), "datasets": list(study.datasets),
             "n_demos": list(restrict("dai.n_demos", cfg["n_demos"], with_demos, notes, "icl.n_demos >= 1")),
             "demo_seeds": list(restrict("dai.demo_seeds", cfg["demo_seeds"], icl["demo_seeds"], notes,
                                         "icl.demo_seeds"))}
    return block, {}


def _pairs(run: Run) -> tuple[tuple[str, str], ...]:
    """(model, dataset) captured: used models on every dai dataset, controls only on control datasets."""
    dai, control = run.studies["dai"], run.control
    runs = [(m, d) for m in dai.models if m not in control.models for d in dai.datasets]
    runs += [(m, d) for m in dai.models if m in control.models for d in dai.datasets if d in control.datasets]
    return tuple(runs)


STUDY = StudySpec(
    name="dai", title="ICL as implicit fine-tuning: Dai et al.'s metrics", position=50, with_controls=True,
    resolve=_resolve, pairs=_pairs, prompt_needs=lambda block: (block["n_demos"], ()),
)

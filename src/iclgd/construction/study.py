"""Study construction declares itself (iclgd.core.studies): its reported threshold must be one it computes."""

from __future__ import annotations

from typing import Any

from iclgd.core.config import ConfigError
from iclgd.core.studies import StudySpec


def _check(config: dict[str, Any]) -> None:
    construction = config["construction"]
    if construction["macro_threshold"] not in construction["thresholds"]:
        raise ConfigError("config key construction.macro_threshold must be one of construction.thresholds")


STUDY = StudySpec(name="construction", title='The "ICL = GD" construction against real weights (Shen et al. 2023)',
                  position=40, check=_check)

"""Parameter counts of prepared models, counted from their architecture rather than written down, so that a
figure's size axis follows whatever a registry entry actually loads (a dequantised GGUF, a local HF directory)."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig

from iclgd.core.memory import parameter_counts
from iclgd.core.models import _source_of


def parameter_count(model_dir: Path | str) -> int:
    """Parameters of the prepared model in `model_dir` (resources/models/<model>; for an `hf` entry the
    directory its provenance points at), counted on the meta device by `memory.parameter_counts`: no weights
    are read, so LLaMa-7B counts in a second, and a tied input/output matrix counts once."""
    return parameter_counts(AutoConfig.from_pretrained(_source_of(Path(model_dir))))["total"]

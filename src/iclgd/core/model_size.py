"""Parameter counts of prepared models, counted from their architecture rather than written down, so that a
figure's size axis follows whatever a registry entry actually loads (a dequantised GGUF, a local HF directory)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from iclgd.core.models import _source_of


def parameter_count(model_dir: Path | str) -> int:
    """Parameters of the prepared model in `model_dir` (resources/models/<model>; for an `hf` entry the
    directory its provenance points at), its architecture built on the meta device: no weights are read and
    no memory is taken, so LLaMa-7B counts in a second. `parameters()` yields a tied embedding once, so a
    tied input/output matrix counts once, as in the model's own size."""
    config = AutoConfig.from_pretrained(_source_of(Path(model_dir)))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return int(sum(p.numel() for p in model.parameters()))

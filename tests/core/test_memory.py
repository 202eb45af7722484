"""Memory per job: parameter counts from a meta model, registry configs without weights, and the
fine-tuning / scoring budgets by hand (LLaMa-7B on one 80 GB GPU)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from iclgd.core import memory, models, training
from iclgd.tools import shape_run

N7B = 6_738_415_616
H, LAYERS = 4096, 32
V_MID = H * H  # one W_V


@pytest.fixture(scope="module")
def counts_7b() -> dict[str, int]:
    started = time.perf_counter()
    counts = memory.parameter_counts(shape_run.llama7b_config())
    assert time.perf_counter() - started < 2.0
    return counts


def test_llama7b_counts(counts_7b):
    assert counts_7b["total"] == counts_7b["all"] == N7B
    assert counts_7b["kv"] == 2 * LAYERS * H * H
    assert counts_7b["v_mid"] == counts_7b["v_deep"] == counts_7b["largest_v_mid"] == V_MID
    assert counts_7b["largest_all"] == 32000 * H  # the embedding / the untied head


def test_counts_match_a_real_tiny_model():
    config = LlamaConfig(vocab_size=500, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    counts = memory.parameter_counts(config)
    params = dict(model.named_parameters())
    assert counts["total"] == sum(p.numel() for p in model.parameters())  # tied: counted once
    for subset in training.SUBSETS:
        sizes = [params[n].numel() for n in training.select_parameters(model, subset)]
        assert (counts[subset], counts[f"largest_{subset}"]) == (sum(sizes), max(sizes)), subset
    assert counts["kv"] == 3 * 2 * 32 * 16  # GQA: k and v are 32 -> 2 heads x 8


def test_adam_on_all_in_bf16_with_masters_does_not_fit_80gb(counts_7b):
    est = memory.finetune_bytes(counts_7b, "all", "adam", "bfloat16", tokens=256, layers=LAYERS, hidden=H)
    parts = est.breakdown
    assert parts["weights"] == 2 * N7B and parts["masters_fp32"] == 4 * N7B
    assert parts["gradients"] == 2 * N7B + 4 * 32000 * H  # bf16 gradients + one float32 at a time
    assert parts["optimizer_state"] == 8 * N7B and parts["host_snapshot"] == est.host_bytes == 2 * N7B
    # 16 bytes per parameter (weights 2, masters 4, gradients 2, Adam 8): 107.8 GB before activations
    assert 16 * N7B / 1e9 == pytest.approx(107.8, abs=0.05)
    assert est.device_gb > 108 and not est.fits(80)
    # activations: 256 tokens x (32 layers x ((8 h + 4 x 11008) x 2 B + 8 h B) + 8 h B) = 0.78 GB
    assert parts["activations"] == 256 * (32 * ((8 * H + 4 * 11008) * 2 + 8 * H) + 8 * H)


def test_sgd_on_v_mid_fits_and_keeps_only_its_slice(counts_7b):
    est = memory.finetune_bytes(counts_7b, "v_mid", "sgd", "bfloat16", tokens=256, layers=LAYERS, hidden=H)
    parts = est.breakdown
    assert (parts["masters_fp32"], parts["optimizer_state"]) == (4 * V_MID, 0)
    assert parts["gradients"] == 2 * V_MID + 4 * V_MID
    assert parts["activations"] == 256 * (16 * ((8 * H + 4 * 11008) * 2 + 8 * H) + 8 * H)  # layers 16..31
    assert est.fits(80) and 13.4 < est.device_gb < 18
    assert est.host_bytes == 2 * V_MID


def test_float32_on_cpu_needs_no_masters_and_requests_everything(counts_7b):
    est = memory.finetune_bytes(counts_7b, "all", "sgd", "float32", tokens=64, layers=LAYERS, hidden=H)
    assert est.breakdown["masters_fp32"] == 0 and est.breakdown["gradients"] == 4 * N7B
    cpu = memory.request_mb(est, "cpu", margin=1.0)
    want = memory.PROCESS_BASE + 4 * N7B + 4 * N7B + est.breakdown["activations"] + 4 * N7B
    assert cpu == -(-want // 2**20)  # weights + gradients + activations + snapshot + base, no CUDA allowance
    gpu = memory.request_mb(est, "cuda", margin=1.0)  # host: base + weights while loading + snapshot
    assert gpu == -(-(memory.PROCESS_BASE + 8 * N7B) // 2**20) < cpu


def test_scoring_bytes_by_hand(counts_7b):
    est = memory.scoring_bytes(counts_7b, "bfloat16", batch_tokens=1024, layers=LAYERS, hidden=H,
                               vocab=32000, rows=16)
    parts = est.breakdown
    assert parts["kv_cache"] == 2 * LAYERS * H * 1024 * 2  # 0.54 GB
    assert parts["activations"] == 16 * H * 1024 * 2 + 4 * 32000 * 16
    assert est.fits(40) and not est.fits(13)
    assert memory.request_mb(est, "cuda", margin=1.0) == -(-(memory.PROCESS_BASE + 2 * N7B) // 2**20)


def test_unknown_optimizer_is_refused(counts_7b):
    with pytest.raises(training.FinetuneError, match="rmsprop"):
        memory.finetune_bytes(counts_7b, "all", "rmsprop", "bfloat16", 1, LAYERS, H)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_activation_formula_matches_autograds_saved_bytes(dtype):
    """The documented per-token-per-layer factor against the shape run's autograd probe, on the marginal
    layer (two models that differ by two layers) and in total."""
    def probe(layers: int) -> int:
        config = LlamaConfig(vocab_size=300, hidden_size=256, intermediate_size=688, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False)
        model = LlamaForCausalLM._from_config(config, dtype=dtype).eval()
        examples = [training.Example(uid=i, ids=tuple(range(5, 69)), target=3) for i in range(2)]
        return shape_run.saved_for_all(model, examples)

    two, four = probe(2), probe(4)
    per_layer = lambda n: memory.activation_bytes(128, n, 256, dtype, 688)
    assert per_layer(4) - per_layer(2) == pytest.approx(four - two, rel=0.01)
    assert per_layer(2) == pytest.approx(two, rel=0.03)


def test_model_config_reads_what_exists_without_weights(tmp_path, tiny_dir, registry):
    hf = tmp_path / "weights"
    config = LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2)
    config.save_pretrained(hf)  # config.json only: no weights needed
    reg = registry | {"big": {"source": "hf", "path": "weights"},
                      "big-untrained": {"source": "untrained", "like": "big", "seed": 0}}
    assert memory.model_config(reg, "big", tmp_path).hidden_size == 16  # relative to basedir
    assert memory.model_config(reg, "big-untrained", tmp_path, tmp_path / "prepared" / "big-untrained").vocab_size == 100
    assert memory.model_config(reg, "smollm2-135m", tmp_path, tmp_path / "absent") is None  # GGUF not dequantised
    # untrained of a GGUF entry: its like's prepared config.json; tiny: from the spec and the prepared tokenizer model
    (tmp_path / "models" / "smollm2-135m").mkdir(parents=True)
    (tmp_path / "models" / "smollm2-135m" / "config.json").write_text(
        json.dumps(json.loads((tiny_dir / "config.json").read_text()) | {"hidden_size": 576}))
    got = memory.model_config(reg, "smollm2-135m-untrained", tmp_path, tmp_path / "models" / "smollm2-135m-untrained")
    assert got.hidden_size == 576
    tiny = memory.model_config(reg, "tiny-llama", tmp_path, tmp_path / "models" / "tiny-llama")
    prepared = LlamaForCausalLM.config_class.from_pretrained(tiny_dir)
    ignore = {"_name_or_path": "", "dtype": None, "architectures": None}
    assert tiny.to_diff_dict() | ignore == prepared.to_diff_dict() | ignore
    assert memory.model_config(reg, "tiny-llama", tmp_path, tiny_dir).vocab_size == len(
        AutoTokenizer.from_pretrained(tiny_dir))
    assert memory.model_config(reg["big"], "big", tmp_path).num_hidden_layers == 2  # a lone spec works too
    assert models.tiny_config(10, 1, 2, 0).tie_word_embeddings

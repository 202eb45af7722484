"""LLaMa-7B's shape run: the exact parameter count, and the tiny shape through the same write -> load -> score
-> train-step path the 7B run takes (the truncated tokenizer it uses: test_vocab_cut.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from iclgd.core import forward, memory, models, training
from iclgd.tools import shape_memory, shape_run, vocab_cut

PHASES = {"write", "load", "score", "train_step", "train_adam", "train_sgd", "untrained"}


def llama_parameters(v: int, h: int, i: int, layers: int) -> int:
    """Embedding + untied head, per layer q/k/v/o + gate/up/down + two norms, final norm."""
    return 2 * v * h + layers * (4 * h * h + 3 * h * i + 2 * h) + h


def test_llama7b_config_has_the_published_size():
    config = shape_run.llama7b_config()
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    n = sum(p.numel() for p in model.parameters())
    assert n == llama_parameters(32000, 4096, 11008, 32) == 6_738_415_616
    assert config.rope_parameters["rope_theta"] == 10000.0 and not config.tie_word_embeddings
    assert (config.max_position_embeddings, config.rms_norm_eps, config.bos_token_id, config.eos_token_id) == (
        2048, 1e-6, 1, 2)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_dir):
    """The tiny shape end to end in float32 (weights written in bf16, loaded upcast: exact)."""
    out = tmp_path_factory.mktemp("shape")
    return shape_run.run("tiny", out, dtype="float32", tokenizer_from=tiny_dir, tokenizer="smollm2"), out


def test_tiny_run_records_every_phase(tiny_run):
    report, out = tiny_run
    assert set(report["phases"]) == PHASES
    for entry in report["phases"].values():
        assert entry["seconds"] >= 0 and entry["peak_rss_gb"] > 0 and entry["rss_end_gb"] > 0
    config = shape_run.tiny_config()
    n = llama_parameters(config.vocab_size, config.hidden_size, config.intermediate_size, config.num_hidden_layers)
    assert report["parameters"] == report["phases"]["write"]["parameters"] == n
    assert 2 * n < report["disk"]["bytes"] < 2 * n + 5_000_000  # bf16 weights plus tokenizer and configs
    assert report["phases"]["load"]["provenance"] == {"name": "llama-7b", "source": "hf",
                                                      "path": str((out / "hf").resolve())}
    assert report["phases"]["load"]["tokenizer_size"] == 32000
    assert json.loads(json.dumps(report, default=str))["memory_80gb_gpu"]["parameters"] == n
    assert report["phases"]["write"]["tokenizer"]["name"] == "smollm2"


def test_tiny_run_draws_the_untrained_control_in_the_run_dtype(tiny_run):
    """prepare_model's untrained copy of the registered hf entry: same config, new weights, in float32 here."""
    report, out = tiny_run
    entry = report["phases"]["untrained"]
    assert entry["provenance"] == {"like": "llama-7b", "seed": 0, "device": "cpu", "dtype": "float32"}
    untrained, _ = models.load_model(out / "prepared" / shape_run.UNTRAINED, "cpu", "float32")
    base, _ = models.load_model(out / "prepared" / "llama-7b", "cpu", "float32")
    assert untrained.config.hidden_size == base.config.hidden_size == 64
    assert not torch.equal(untrained.lm_head.weight, base.lm_head.weight)
    assert 4 * report["parameters"] < entry["bytes"] < 4 * report["parameters"] + 5_000_000
    assert 0 < entry["child_peak_rss_gb"] < 8  # drawn in its own process: its own peak, measured there


def test_tiny_run_reports_whether_small_steps_survived(tiny_run):
    report = tiny_run[0]
    assert set(report["update_survived"]) == {"gd@0.001", "adam@1e-05", "sgd@0.0001"}
    for name in ("train_adam", "train_sgd"):
        step = report["phases"][name]
        assert step["master_dtype"] == step["weight_dtype"] == "torch.float32"  # float32: its own master
        assert step["update_survived"] and step["restored_bitwise"] and step["peak_rss_gb"] > 0
    assert report["phases"]["train_adam"]["max_master_step"] == pytest.approx(1e-5, rel=0.05)


def test_bf16_small_steps_survive_in_the_master(tiny_run):
    """In bf16 the Adam step at 1e-5 lives in the float32 master; bf16 alone would show it only where
    |w| < ~2.6e-3 (half a bf16 step above the update)."""
    model, tok = models.load_model(tiny_run[1] / "prepared" / "llama-7b", "cpu", "bfloat16")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    step = shape_run.train_phase(model, tok, shape_run.sst2_prompt_set(4, 1), "v_mid", "adam", 1e-5, full=False)
    assert (step["weight_dtype"], step["master_dtype"]) == ("torch.bfloat16", "torch.float32")
    assert step["update_survived"] and step["master_changed_elements"] > 0.9 * step["trainable_parameters"]
    assert step["max_master_step"] == pytest.approx(1e-5, rel=0.05)
    assert step["changed_elements"][step["trained"][0]] < 0.5 * step["trainable_parameters"]
    assert step["restored_bitwise"] and all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_tiny_train_step_changes_only_one_wv(tiny_run):
    step = tiny_run[0]["phases"]["train_step"]
    wv = "model.layers.1.self_attn.v_proj.weight"  # v_mid: layer 2 // 2
    assert step["trained"] == [wv] and step["changed_tensors"] == [wv]
    assert 0 < step["changed_elements"][wv] <= step["trainable_parameters"] == 64 * 64
    assert step["restored_bitwise"] and step["saved_activation_bytes_all"] > 0 and step["layers"] == 2


@pytest.fixture(scope="module")
def tiny_loaded(tiny_run):
    model, tok = models.load_model(tiny_run[1] / "prepared" / "llama-7b", "cpu", "float32")
    return model, tok


@pytest.mark.parametrize("lr,changed", [(0.0, []), (1e-2, ["model.layers.1.self_attn.v_proj.weight"])])
def test_train_step_with_and_without_a_learning_rate(tiny_loaded, lr, changed):
    model, tok = tiny_loaded
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = shape_run.train_phase(model, tok, shape_run.sst2_prompt_set(4, 2), "v_mid", "gd", lr)
    assert step["changed_tensors"] == changed
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # restored afterwards


def test_activation_probe_allocates_no_gradients_and_keeps_the_flags(tiny_loaded):
    model, tok = tiny_loaded
    prompt_set = shape_run.sst2_prompt_set(4, 1)
    labels = forward.label_token_ids(tok, prompt_set["label_words"])
    examples = training.encode_examples(tok, training.demo_queries(prompt_set), prompt_set["classes"], labels)
    model.get_parameter("model.norm.weight").requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    one = shape_run.saved_for_all(model, examples[:1])
    assert 0 < one < shape_run.saved_for_all(model, examples)  # more tokens, more saved activations
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


def test_fingerprints_see_a_single_flipped_element(tiny_loaded):
    model, _ = tiny_loaded
    before = shape_run.fingerprints(model)
    param = model.get_parameter("model.norm.weight")
    with torch.no_grad():
        param[3] += 1.0
        after = shape_run.fingerprints(model)
        param[3] -= 1.0
    assert [k for k in before if before[k] != after[k]] == ["model.norm.weight"]


def test_prefix_reuse_scores_equal_a_direct_forward(tiny_loaded, tiny_run):
    model, tok = tiny_loaded
    prompt_set = shape_run.sst2_prompt_set(4, 4)
    records, info = shape_run.score_phase(model, tok, prompt_set, batch_size=2, batch_tokens=1024)
    labels = forward.label_token_ids(tok, prompt_set["label_words"])
    for row, query in zip(records.itertuples(), prompt_set["queries"]):
        ids = tok(prompt_set["prefix"]).input_ids + tok(query["query"], add_special_tokens=False).input_ids
        with torch.no_grad():
            ref = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
        np.testing.assert_allclose(row.label_logprobs, ref[labels].numpy(), atol=1e-4)
        assert row.n_tokens == len(ids)
    assert info["max_abs_diff_prefix_vs_full_first_query"] < 1e-4
    assert tiny_run[0]["phases"]["score"]["max_abs_diff_prefix_vs_full_first_query"] < 1e-4


def test_memory_budget_comes_from_the_memory_module(tiny_run):
    report = tiny_run[0]
    budget, train = report["memory_80gb_gpu"], report["phases"]["train_step"]
    assert budget == shape_memory.memory_budget(shape_run.tiny_config(), train)
    act = budget["activation_bytes_per_token_per_layer"]
    assert act["dtype"] == "float32" and act["formula"] == (8 * 64 + 4 * 172) * 4 + 8 * 64
    # 2 layers x 64 wide: the label logits (32000 per row) and final norm, spread over the layers, weigh in
    assert act["formula"] < act["measured"] < 2 * act["formula"]
    seven = memory.gpu_budget(shape_run.llama7b_config())
    assert seven["parameters"] == 6_738_415_616 and seven["sgd_v_mid_bfloat16"]["fits"]
    assert not seven["adam_all_bfloat16"]["fits"] and seven["adam_all_bfloat16"]["device_gb"] > 108


def test_an_unknown_tokenizer_is_refused():
    with pytest.raises(vocab_cut.ShapeError, match="llama or smollm2"):
        shape_run.shape_tokenizer("gpt2", 32000)


def test_cli_writes_the_report_with_llamas_tokenizer(tmp_path):
    """The default tokenizer is LLaMa's own (skipped where `make llama-tokenizer` has not built it)."""
    llama_tokenizer = pytest.importorskip("iclgd.core.llama_tokenizer")
    if not (llama_tokenizer.OUT_DIR / "tokenizer.json").exists():
        pytest.skip("LLaMa's tokenizer is not built (make llama-tokenizer)")
    out = tmp_path / "tiny.json"
    shape_run.main(["--shape", "tiny", "--dir", str(tmp_path / "m"), "--out", str(out), "--queries", "2",
                    "--threads", str(torch.get_num_threads())])
    report = json.loads(out.read_text())
    assert set(report["phases"]) == PHASES and report["phases"]["score"]["queries"] == 2
    assert report["machine"]["loadavg_start"] and report["dtype"] == "bfloat16"
    tokenizer = report["phases"]["write"]["tokenizer"]
    assert (tokenizer["name"], tokenizer["vocab_size"]) == ("llama", 32000)
    assert report["phases"]["untrained"]["provenance"]["dtype"] == "bfloat16"
    assert all(v["update_survived"] for v in report["update_survived"].values())

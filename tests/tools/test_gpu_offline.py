"""The offline GPU check on the CPU: (a) and (b-tiny) end to end with a tokenizer built here, the report's
schema (CUDA steps skipped by name), and the comparison numbers on cases with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from iclgd.tools import gpu_offline
from iclgd.core.forward import RECORD_COLUMNS


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A byte-level BPE tokenizer (~400 ids) trained on the check's own reviews: no download, no other module."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    texts = gpu_offline.reviews(40, 0)["text"].tolist()
    tok.train_from_iterator([f"Review: {t}\nSentiment: {w}" for t, w in zip(texts, ["positive", "negative"] * 20)], trainer)
    path = tmp_path_factory.mktemp("tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>").save_pretrained(path)
    return path


def strict(text: str):
    """json.loads that refuses NaN / Infinity (not JSON)."""
    def refuse(name):
        raise ValueError(f"{name} in the report")
    return json.loads(text, parse_constant=refuse)


def test_cpu_end_to_end(tokenizer_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU path even on a GPU machine
    out, threads = tmp_path / "gpu-offline.json", torch.get_num_threads()
    try:  # one thread: on a busy 2-core machine two threads make the tiny model's forwards 5x slower
        gpu_offline.main(["--tokenizer", str(tokenizer_dir), "--out", str(out), "--epochs", "1", "--budget-s", "120",
                          "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    report = strict(out.read_text())
    assert report["schema"] == gpu_offline.SCHEMA and report["cuda"] is False and report["device_name"] is None
    assert report["skipped"] == ["equivalence cuda/float32: CUDA is not available",
                                 "equivalence cuda/bfloat16: CUDA is not available",
                                 "timing on CUDA: CUDA is not available; the tiny shape ran on the CPU instead"]
    assert report["tokenizer"]["size"] == len(AutoTokenizer.from_pretrained(tokenizer_dir)) and report["install"] is None
    assert report["settings"]["finetune"]["lrs"] == [1e-4, 5e-4, 1e-3, 5e-3] and report["settings"]["finetune"]["dev_size"] == 64

    eq = report["equivalence"]
    assert eq["reference"] == "cpu/float32" and list(eq["comparisons"]) == ["cpu/float32 (repeat)"]
    repeat = eq["comparisons"]["cpu/float32 (repeat)"]  # the same run twice on the CPU: bitwise equal
    assert repeat["worst"] == {"max_abs_diff_logprob": 0.0, "mean_abs_diff_logprob": 0.0, "min_argmax_agreement": 1.0,
                               "max_loss_abs_diff": 0.0, "max_loss_rel_diff": 0.0,
                               "finetuned_accuracy_agreement": True, "train_until_agree": True}
    assert sorted(repeat["finetune"]) == sorted(f"{s}/{o}" for s, o in gpu_offline.FT_CASES)
    assert repeat["icl"]["rows"] == eq["queries"] == 12 and repeat["finetune"]["all/gd"]["loss"]["epochs"] == 1

    timing = report["timing"]
    assert timing["shape"] == "tiny" and timing["device"] == "cpu" and "not LLaMa-7B" in timing["marked"]
    assert timing["parameters"] == 2 * 32000 * 64 + 2 * (4 * 64 * 64 + 3 * 64 * 172 + 2 * 64) + 64
    for key, k in (("scoring_k8", 8), ("scoring_long", None)):
        s = timing[key]
        assert s["status"] == "ok" and s["seconds_per_forward_token"] > 0 and s["forward_tokens"] < s["prompt_tokens"]
        assert s["k"] == k if k else s["prefix_tokens"] > 1500
    assert timing["scoring_k8"]["queries"] == 64  # paper.yaml's dev_size
    cases = [(e["subset"], e["optimizer"]) for e in timing["train"]]
    assert cases == [(s, o) for s in gpu_offline.TIMING_SUBSETS for o in ("gd", "sgd", "adam")]
    for e in timing["train"]:
        assert e["status"] == "ok" and e["seconds_per_trained_token"] > 0 and e["lr"] == 1e-4
        assert e["examples"] == (8 if e["optimizer"] == "gd" else 1) and "peak_gpu_gb" not in e
    assert "cpu/float32 (repeat) vs cpu/float32" in capsys.readouterr().out
    costs = report["timing"]["costs"]  # what cost.load_costs reads
    assert costs["device"] == "cpu" and costs["model"] == "tiny" and costs["peak_gpu_gb"] is None
    assert costs["score_s_per_token"] == timing["scoring_k8"]["seconds_per_forward_token"]
    assert sorted(costs["train_s_per_token"]) == sorted(f"{e['subset']}/{e['optimizer']}" for e in timing["train"])


def frame(logprobs, uids=(1, 2, 3, 4)) -> pd.DataFrame:
    n = len(logprobs)
    return pd.DataFrame({
        "model": "tiny", "dataset": "sst2", "method": "icl", "k": 4, "seed": 0, "order": 0, "optimizer": "none",
        "subset": "none", "lr": 0.0, "epoch": 0, "uid": list(uids), "label": ["negative", "positive"] * (n // 2),
        "label_index": [0, 1] * (n // 2), "pred_index": np.argmax(logprobs, axis=1),
        "label_logprobs": [np.array(r, np.float32) for r in logprobs], "argmax_id": 0, "argmax_token": "x",
        "full_correct": False, "top10_ids": [np.zeros(10, int)] * n, "top10_probs": [np.zeros(10, np.float32)] * n,
        "n_tokens": 20})[RECORD_COLUMNS]


LOGPROBS = [[-0.5, -1.0], [-2.0, -0.25], [-1.5, -0.75], [-0.1, -3.0]]


def outputs(logprobs=LOGPROBS, losses=(0.75, 0.5), until=("converged", 2)):
    ft = {"all/gd": {"losses": list(losses), "records": frame(logprobs)},
          "v_mid/adam": {"losses": [0.75, 0.625], "records": frame(LOGPROBS)}}
    return {"icl": frame(LOGPROBS), "finetune": ft, "seconds": 1.0,
            "until": {"status": until[0], "epochs": until[1], "losses": [0.75, 0.5, 0.125][: until[1] + 1]}}


def test_identical_outputs_compare_to_zero():
    comp = gpu_offline.compare_equivalence(outputs(), outputs())
    assert comp["worst"] == {"max_abs_diff_logprob": 0.0, "mean_abs_diff_logprob": 0.0, "min_argmax_agreement": 1.0,
                             "max_loss_abs_diff": 0.0, "max_loss_rel_diff": 0.0, "finetuned_accuracy_agreement": True,
                             "train_until_agree": True}
    assert comp["train_until"]["loss"]["max_abs_diff"] == 0.0


def test_perturbed_outputs_give_the_difference_they_should():
    moved = [[-0.5, -1.0], [-2.0, -0.25], [-0.5, -0.75], [-0.1, -3.5]]  # query 3 flips (by 1.0), query 4 moves 0.5
    comp = gpu_offline.compare_equivalence(outputs(), outputs(moved, losses=(0.75, 0.625), until=("not_converged", 1)))
    w = comp["worst"]
    assert w["max_abs_diff_logprob"] == pytest.approx(1.0)
    # three record sets (icl, all/gd, v_mid/adam) of 8 log-probs; only all/gd moved, by 1.5 in all
    assert w["mean_abs_diff_logprob"] == pytest.approx((0 + 1.5 / 8 + 0) / 3)
    assert w["min_argmax_agreement"] == 0.75 and w["finetuned_accuracy_agreement"] is False
    assert w["max_loss_abs_diff"] == pytest.approx(0.125) and w["max_loss_rel_diff"] == pytest.approx(0.25)
    assert w["train_until_agree"] is False and "loss" not in comp["train_until"]
    assert comp["train_until"]["status"] == ["converged", "not_converged"]


def test_timer_records_oom_errors_and_the_budget():
    timer = gpu_offline.Timer("cpu", budget_s=60)
    assert timer.case(lambda: {"x": 1})["status"] == "ok"

    def oom():
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def broken():
        raise RuntimeError("shape mismatch")

    assert timer.case(oom)["status"] == "oom"
    assert timer.case(broken) | {"peak_rss_gb": 0} == {"status": "error", "error": "RuntimeError: shape mismatch", "peak_rss_gb": 0}
    assert gpu_offline.Timer("cpu", budget_s=0).case(lambda: {})["status"] == "skipped"


def test_report_is_json_safe():
    assert gpu_offline.clean({"a": float("nan"), "b": [np.float32(0.5), np.int64(3)], 1: float("inf")}) == \
        {"a": None, "b": [0.5, 3], "1": None}


def test_cli_without_a_tokenizer_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu_offline.main(["--tokenizer", str(tmp_path / "none"), "--out", str(tmp_path / "r.json")])
    assert exit_.value.code == 2 and "no tokenizer directory" in capsys.readouterr().err


def test_a_llama_tokenizer_build_goes_through_its_own_loader(tokenizer_dir, tmp_path):
    pytest.importorskip("iclgd.core.llama_tokenizer")
    assert gpu_offline.load_tokenizer(tokenizer_dir)[1]["loader"] == "AutoTokenizer"
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "tokenizer.json").write_bytes((tokenizer_dir / "tokenizer.json").read_bytes())
    (llama / "source.json").write_text("{}")  # what marks a llama_tokenizer build
    assert gpu_offline.load_tokenizer(llama)[1]["loader"] == "llama_tokenizer.load_llama_tokenizer"

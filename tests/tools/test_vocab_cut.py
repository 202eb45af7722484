"""LLaMa's 32000-token vocabulary cut from SmolLM2's tokenizer (iclgd.tools.vocab_cut): the first ids kept with
the merges that build them, a kept merge of a dropped token refused, the size checked, English encoded as
before."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders
from tokenizers.models import BPE
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from iclgd.tools import vocab_cut


def hand_tokenizer() -> PreTrainedTokenizerFast:
    """ids in merge order, as in SmolLM2: a b -> ab (4), b c -> bc (5), ab c -> abc (6)."""
    vocab = {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "bc": 5, "abc": 6}
    backend = Tokenizer(BPE(vocab, [("a", "b"), ("b", "c"), ("ab", "c")], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


def test_truncation_keeps_the_first_ids_and_the_merges_that_build_them():
    full = hand_tokenizer()
    assert full("abc", add_special_tokens=False).input_ids == [6]
    cut = vocab_cut.truncate_tokenizer(full, 5)  # keeps <unk> a b c ab; merges: a b only
    assert cut.convert_ids_to_tokens(list(range(5))) == ["<unk>", "a", "b", "c", "ab"]
    assert cut("abc", add_special_tokens=False).input_ids == [4, 3]  # ab + c: the ab c merge is gone
    assert cut("bc", add_special_tokens=False).input_ids == [2, 3]
    assert vocab_cut.check_tokenizer(cut, 5, ["abc", "cab", "bcab"])["merges"] == 1
    assert vocab_cut.truncate_tokenizer(full, 6)("abc", add_special_tokens=False).input_ids == [4, 3]


def test_truncation_refuses_a_kept_merge_of_a_dropped_token():
    vocab = {"<unk>": 0, "a": 1, "ab": 2, "b": 3}  # "ab" kept at 3 tokens, but its part "b" is not
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(BPE(vocab, [("a", "b")], unk_token="<unk>")),
                                  unk_token="<unk>")
    with pytest.raises(vocab_cut.ShapeError, match="dropped tokens"):
        vocab_cut.truncate_tokenizer(tok, 3)


def test_check_tokenizer_catches_a_wrong_size():
    with pytest.raises(vocab_cut.ShapeError, match="expected 6"):
        vocab_cut.check_tokenizer(vocab_cut.truncate_tokenizer(hand_tokenizer(), 5), 6, ["abc"])


@pytest.fixture(scope="module")
def smollm2_tok(tiny_dir):
    return AutoTokenizer.from_pretrained(tiny_dir)  # SmolLM2's tokenizer, as prepare_model saves it


def test_smollm2_cut_to_32000_encodes_english_as_before(smollm2_tok):
    cut = vocab_cut.truncate_tokenizer(smollm2_tok)
    seen = vocab_cut.check_tokenizer(cut, 32000)
    assert seen["max_id_on_text"] < 32000 and len(cut) == 32000
    assert (cut.bos_token_id, cut.eos_token_id) == (1, 2)  # LLaMa's bos / eos ids
    assert cut.convert_ids_to_tokens(list(range(32000))) == smollm2_tok.convert_ids_to_tokens(list(range(32000)))
    for text in vocab_cut.ENGLISH:  # where SmolLM2 itself stays below 32000 nothing changes (merge prefix)
        ids = smollm2_tok(text, add_special_tokens=False).input_ids
        if max(ids) < 32000:
            assert cut(text, add_special_tokens=False).input_ids == ids
    rare = " antidisestablishmentarianism"
    assert max(cut(rare, add_special_tokens=False).input_ids) < 32000

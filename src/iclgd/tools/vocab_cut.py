"""A byte-level BPE tokenizer cut to its first N ids (LLaMa-7B's shape needs exactly 32000; see shape_run).

Why: no LLaMa tokenizer is reachable offline, and a model with LLaMa-7B's exact configuration needs a
tokenizer of exactly its vocabulary size for the parameter count and memory to be the real ones.
"""

from __future__ import annotations

import json
from typing import Any

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

VOCAB = 32000

#: Ordinary English the truncated tokenizer must encode with ids < VOCAB only.
ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "Review: a gripping, beautifully shot film that earns every minute.\nSentiment: positive",
    "In-context learning and gradient descent: 1,234 examples, 56.7% accuracy (2023).",
]


class ShapeError(RuntimeError):
    """A tokenizer or model that cannot be cut to the requested shape."""


def _merge_pair(merge: str | list[str]) -> tuple[str, str]:
    """tokenizers writes merges as [a, b] pairs (new) or "a b" strings (old)."""
    left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
    return left, right


def truncate_tokenizer(tok, vocab_size: int = VOCAB) -> PreTrainedTokenizerFast:
    """The first `vocab_size` ids of a byte-level BPE tokenizer, as a tokenizer of exactly that size.

    Why: no LLaMa tokenizer is reachable offline, and the model's embedding must have LLaMa-7B's exact
    vocabulary (32000) for the parameter count and memory to be the real ones. SmolLM2's BPE ids are
    assigned in merge order (special tokens, then bytes, then one id per merge), so keeping ids
    < vocab_size and the merges whose result is kept is a prefix of its merge list: every word still
    encodes (into more, shorter pieces) and never to an id >= vocab_size (`check_tokenizer`).
    """
    spec = json.loads(tok.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ShapeError(f"can only truncate a BPE tokenizer, not {model.get('type')!r}")
    vocab = {token: i for token, i in model["vocab"].items() if i < vocab_size}
    if sorted(vocab.values()) != list(range(vocab_size)):
        raise ShapeError(f"ids 0..{vocab_size - 1} are not all in the vocabulary")
    merges = [m for m in model["merges"] if "".join(_merge_pair(m)) in vocab]
    orphans = [m for m in merges if not all(part in vocab for part in _merge_pair(m))]
    if orphans:
        raise ShapeError(f"kept merges use dropped tokens, e.g. {orphans[:3]}")
    model["vocab"], model["merges"] = vocab, merges
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] < vocab_size]
    specials = {
        key: value for key in ("bos_token", "eos_token", "pad_token", "unk_token")
        if (value := getattr(tok, key, None)) is not None and tok.convert_tokens_to_ids(value) < vocab_size
    }
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)), **specials)


def check_tokenizer(tok, vocab_size: int, texts: list[str] = ENGLISH) -> dict[str, Any]:
    """Every id maps to one token and back, the size is exact, and `texts` encode below vocab_size
    and decode to themselves; raises ShapeError otherwise, returns what it saw."""
    if len(tok) != vocab_size:
        raise ShapeError(f"tokenizer has {len(tok)} tokens, expected {vocab_size}")
    tokens = tok.convert_ids_to_tokens(list(range(vocab_size)))
    if tok.convert_tokens_to_ids(tokens) != list(range(vocab_size)) or len(set(tokens)) != vocab_size:
        raise ShapeError("some kept ids do not map to a unique token and back")
    encoded = [tok(text, add_special_tokens=False).input_ids for text in texts]
    top = max(max(ids) for ids in encoded)
    if top >= vocab_size:
        raise ShapeError(f"encoding ordinary text gave id {top} >= {vocab_size}")
    for text, ids in zip(texts, encoded):
        if tok.decode(ids) != text:
            raise ShapeError(f"{text!r} does not survive encode/decode")
    return {"vocab_size": len(tok), "max_id_on_text": top, "tokens_on_text": sum(map(len, encoded)),
            "merges": len(json.loads(tok.backend_tokenizer.to_str())["model"]["merges"])}

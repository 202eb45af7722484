"""Shared by the data and registry tests: the bytes of a tiny fixture mirror (one file set per raw format),
the dataset specs that read it, and a registry writer that fills in their sha256 digests."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import yaml

# raw bytes of every fixture file, keyed by path relative to the mirror
FILES: dict[str, bytes] = {
    # cp1252: 0x85 is an ellipsis inside a sentence; the file has no trailing newline
    "mr/rt.all": b"0 a mess \x85 really .\n0 dull .\n0 flat .\n0 bad .\n1 fine .\n1 good \x85 .\n1 great .\n1 a gem .",
    # latin-1 decodes 0x85 to U+0085, which str.splitlines() would treat as a line break
    "trec/train": b"NUM:dist How far \x85 is Aspen ?\nHUM:desc Who was Galileo ?\nNUM:date When ?\n",
    "trec/test": b"HUM:ind Who is it ?\n",
    "ag/train.jsonl": (
        b'{"text": "Stocks rise  in Tokyo", "label": "Business", "id": "a"}\n'
        b'{"text": "Phelps wins gold", "label": "Sports", "id": "b"}\n'
        b'{"text": "Phelps wins gold", "label": "Sports", "id": "c"}\n'
        b'{"text": "Title \\"quoted\\" Desc, with comma", "label": "World", "id": "d"}\n'
    ),
    "ag/test.csv": (
        b'"1","Title ""quoted""","Desc, with comma"\n'
        b'"4","New chip","Faster\\than ever #39;s"\n'
        b'"2","Cup final","Goal in the 90th minute"\n'
    ),
    "cb/train.jsonl": b'{"premise": "It rained.", "hypothesis": "It was wet.", "label": "entailment", "idx": 0}\n',
    "cb/val.jsonl": (
        b'{"premise": "It rained.", "hypothesis": "It was dry.", "label": "contradiction", "idx": 0}\n'
        b'{"premise": "He left.", "hypothesis": "He may return.", "label": "neutral", "idx": 1}\n'
    ),
    "fin/all.txt": "".join(
        f"Sales {'up' if i % 2 else 'down'} {i} % @ EUR {i} .@{'positive' if i % 2 else 'negative'}\n"
        for i in range(20)
    ).encode(),
    "tw/train_text.txt": b"@user so happy today \n@user awful people \n",
    "tw/train_labels.txt": b"0\n1\n",
    "tw/test_text.txt": b"nice weather \n",
    "tw/test_labels.txt": b"0\n",
}

SPECS: dict[str, dict] = {
    "mr": {
        "format": "label_text",
        "encoding": "cp1252",
        "files": {"all": "mr/rt.all"},
        "holdout": {"test_lines": [[1, 2], [5, 6]]},
        "fields": ["text"],
        "classes": ["negative", "positive"],
        "label_map": {"0": "negative", "1": "positive"},
        "verbalizer": {"negative": "negative", "positive": "positive"},
        "template": "Review: {text}\nSentiment:",
    },
    "trec": {
        "format": "label_text",
        "encoding": "latin-1",
        "label_split": ":",
        "files": {"train": "trec/train", "test": "trec/test"},
        "fields": ["text"],
        "classes": ["human", "number"],
        "label_map": {"HUM": "human", "NUM": "number"},
        "verbalizer": {"human": "human", "number": "number"},
        "template": "Question: {text}\nAnswer Type:",
    },
    "agnews": {
        "format": "jsonl",
        "files": {
            "train": ["ag/train.jsonl"],
            "test": {
                "paths": "ag/test.csv",
                "format": "csv",
                "columns": ["label", "title", "description"],
                "field_map": {"text": ["title", "description"]},
            },
        },
        "fields": ["text"],
        "classes": ["world", "sports", "technology"],
        "label_map": {
            "1": "world",
            "2": "sports",
            "4": "technology",
            "World": "world",
            "Sports": "sports",
            "Technology": "technology",
            "Business": "world",
        },
        "verbalizer": {"world": "world", "sports": "sports", "technology": "technology"},
        "template": "Article: {text}\nTopic:",
    },
    "cb": {
        "format": "jsonl",
        "files": {"train": "cb/train.jsonl", "test": "cb/val.jsonl"},
        "fields": ["premise", "hypothesis"],
        "classes": ["entailment", "contradiction", "neutral"],
        "label_map": {"entailment": "entailment", "contradiction": "contradiction", "neutral": "neutral"},
        "verbalizer": {"entailment": "true", "contradiction": "false", "neutral": "neither"},
        "template": "{premise}\nQuestion: {hypothesis} True, False, or Neither?\nAnswer:",
    },
    "fin": {
        "format": "at_suffix",
        "files": {"all": "fin/all.txt"},
        "holdout": {"test_fraction": 0.2, "seed": 0},
        "fields": ["text"],
        "classes": ["negative", "positive"],
        "label_map": {"negative": "negative", "positive": "positive"},
        "verbalizer": {"negative": "negative", "positive": "positive"},
        "template": "Sentence: {text}\nSentiment:",
    },
    "tweet": {
        "format": "parallel_lines",
        "files": {
            "train": {"text": "tw/train_text.txt", "labels": "tw/train_labels.txt"},
            "test": {"text": "tw/test_text.txt", "labels": "tw/test_labels.txt"},
        },
        "fields": ["text"],
        "classes": ["not_hate", "hate"],
        "label_map": {"0": "not_hate", "1": "hate"},
        "verbalizer": {"not_hate": "neutral", "hate": "hate"},
        "template": "Tweet: {text}\nLabel:",
        "hub": {
            "path": "org/tweets",
            "name": "hate",
            "splits": {"train": "train", "test": "test"},
            "label_column": "label",
            "label_names": ["not_hate", "hate"],
        },
    },
}

PREFIX = {"mr": "mr/", "trec": "trec/", "agnews": "ag/", "cb": "cb/", "fin": "fin/", "tweet": "tw/"}


def sha(data: bytes) -> str:
    """The hex digest a registry entry records per file."""
    return hashlib.sha256(data).hexdigest()


def write_registry(path: Path, specs: dict[str, dict], files: dict[str, bytes] = FILES) -> Path:
    """Dump specs to YAML, filling each one's sha256 from the fixture bytes."""
    specs = copy.deepcopy(specs)
    for name, spec in specs.items():
        spec.setdefault("sha256", {rel: sha(data) for rel, data in files.items() if rel.startswith(PREFIX[name])})
    path.write_text(yaml.safe_dump(specs, sort_keys=False), encoding="utf-8")
    return path

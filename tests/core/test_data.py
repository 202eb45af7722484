"""Tests for iclgd.core.data on tiny fixture mirrors built in tmp_path (one per raw format).

The real mirror is only read by `test_real_mirror`, and only when ICLGD_MIRROR is set.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml

from iclgd.core.data import DataError, load_registry, prepare_dataset, read_split, write_split

REPO = Path(__file__).resolve().parents[2]

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
    return hashlib.sha256(data).hexdigest()


def write_registry(path: Path, specs: dict[str, dict], files: dict[str, bytes] = FILES) -> Path:
    """Dump specs to YAML, filling each one's sha256 from the fixture bytes."""
    specs = copy.deepcopy(specs)
    for name, spec in specs.items():
        spec.setdefault("sha256", {rel: sha(b) for rel, b in files.items() if rel.startswith(PREFIX[name])})
    path.write_text(yaml.safe_dump(specs, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def registry(tmp_path: Path) -> dict[str, dict]:
    return load_registry(write_registry(tmp_path / "datasets.yaml", SPECS))


def rows(df: pd.DataFrame) -> list[tuple]:
    return list(df.itertuples(index=False, name=None))


# --------------------------------------------------------------------------- parsing


def test_label_text_cp1252_keeps_0x85_inside_sentence(registry, mirror):
    df = read_split(registry["mr"], mirror, "all")
    assert list(df.columns) == ["idx", "source", "label", "text"]
    assert len(df) == 8  # no trailing newline: last line still counted, nothing split at 0x85
    assert rows(df)[0] == (1, "mr/rt.all", "negative", "a mess \u2026 really .")
    assert rows(df)[-1] == (8, "mr/rt.all", "positive", "a gem .")


def test_label_text_latin1_and_coarse_label(registry, mirror):
    df = read_split(registry["trec"], mirror, "train")
    assert rows(df) == [
        (1, "trec/train", "number", "How far \x85 is Aspen ?"),
        (2, "trec/train", "human", "Who was Galileo ?"),
        (3, "trec/train", "number", "When ?"),
    ]


def test_jsonl_train_and_quoted_csv_test(registry, mirror):
    train = read_split(registry["agnews"], mirror, "train")
    assert rows(train)[0] == (1, "ag/train.jsonl", "world", "Stocks rise  in Tokyo")
    test = read_split(registry["agnews"], mirror, "test")
    assert rows(test) == [
        (1, "ag/test.csv", "world", 'Title "quoted" Desc, with comma'),
        (2, "ag/test.csv", "technology", "New chip Faster\\than ever #39;s"),
        (3, "ag/test.csv", "sports", "Cup final Goal in the 90th minute"),
    ]


def test_jsonl_pair_fields(registry, mirror):
    df = read_split(registry["cb"], mirror, "test")
    assert list(df.columns) == ["idx", "source", "label", "premise", "hypothesis"]
    assert rows(df)[1] == (2, "cb/val.jsonl", "neutral", "He left.", "He may return.")


def test_at_suffix_splits_on_last_at(registry, mirror):
    df = read_split(registry["fin"], mirror, "all")
    assert len(df) == 20
    assert rows(df)[1] == (2, "fin/all.txt", "positive", "Sales up 1 % @ EUR 1 .")


def test_parallel_lines_strip_trailing_space(registry, mirror):
    df = read_split(registry["tweet"], mirror, "train")
    assert rows(df) == [
        (1, "tw/train_text.txt", "not_hate", "@user so happy today"),
        (2, "tw/train_text.txt", "hate", "@user awful people"),
    ]


# --------------------------------------------------------------------------- errors


def test_sha256_mismatch_names_file_and_digests(tmp_path, mirror):
    spec = copy.deepcopy(SPECS["trec"])
    spec["sha256"] = {"trec/train": "0" * 64, "trec/test": sha(FILES["trec/test"])}
    reg = load_registry(write_registry(tmp_path / "r.yaml", {"trec": spec}))
    with pytest.raises(DataError) as err:
        read_split(reg["trec"], mirror, "train")
    msg = str(err.value)
    assert "trec/train" in msg and "0" * 64 in msg and sha(FILES["trec/train"]) in msg


def test_missing_file_points_at_config_key(tmp_path, registry):
    with pytest.raises(DataError, match=r"trec/train: file not found.*data\.mirror_dir"):
        read_split(registry["trec"], tmp_path, "train")  # a dir without the files


@pytest.mark.parametrize(
    "name, rel, data, where, what",
    [
        ("trec", "trec/train", b"HUM:ind Who ?\nXYZ:foo What ?\n", "trec/train:2", "not in label_map"),
        ("trec", "trec/train", b"HUM:ind Who ?\nNUM:date\n", "trec/train:2", "no ' ' between label"),
        ("trec", "trec/train", b"HUM:ind Who ?\n\nNUM:date When ?\n", "trec/train:2", "empty line"),
        ("fin", "fin/all.txt", b"Up .@positive\nDown .negative\n", "fin/all.txt:2", "no '@'"),
        ("agnews", "ag/test.csv", b'"1","a","b"\n"2","only two"\n', "ag/test.csv:2", "expected 3 columns"),
        (
            "agnews",
            "ag/train.jsonl",
            b'{"text": "a", "label": "World"}\n{"text": "b", label}\n',
            "ag/train.jsonl:2",
            "bad JSON",
        ),
        ("cb", "cb/val.jsonl", b'{"premise": "a", "hypothesis": "b"}\n', "cb/val.jsonl:1", "missing label key"),
        (
            "cb",
            "cb/val.jsonl",
            b'{"premise": "a", "hypothesis": 3, "label": "neutral"}\n',
            "cb/val.jsonl:1",
            "must be a string",
        ),
        ("tweet", "tw/train_text.txt", b"one\n \n", "tw/train_text.txt:2", "empty text"),
        ("tweet", "tw/train_labels.txt", b"0\n", "tw/train_labels.txt has 1", "must align"),
        ("trec", "trec/train", b"HUM:ind caf\xc3\xa9\nNUM:x \xff\n", "trec/train:2", "cannot decode"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, mirror, name, rel, data, where, what):
    (mirror / rel).write_bytes(data)
    spec = copy.deepcopy(SPECS[name])
    if "decode" in what:
        spec["encoding"] = "utf-8"
    reg = load_registry(write_registry(tmp_path / "r.yaml", {name: spec}, {**FILES, rel: data}))
    split = next(s for s, e in reg[name]["files"].items() if rel in str(e))
    with pytest.raises(DataError) as err:
        read_split(reg[name], mirror, split)
    assert where in str(err.value) and what in str(err.value)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.update(formt="jsonl"), r"dataset 'trec'.*unknown key 'formt'"),
        (lambda s: s["files"].update(test={"paths": "trec/test", "colums": ["a"]}), r"unknown key 'colums'"),
        (lambda s: s.update(format="tsv"), r"trec\.format"),
        (lambda s: s.update(fields="text"), r"trec\.fields"),
        (lambda s: s["label_map"].update({0: "human"}), r"key 0 at trec\.label_map must be a string"),
        (lambda s: s["label_map"].update(LOC="location"), r"'location' is not one of classes"),
        (lambda s: s["verbalizer"].update(number="human being"), r"verbalizer\.number.*first word"),
        (lambda s: s.update(template="Q: {question}\nA:"), r"placeholders \['question'\]"),
        (lambda s: s.update(template="Q: {text}\nA: "), r"must not end in whitespace"),
        (lambda s: s["sha256"].pop("trec/test"), r"no digest for 'trec/test'"),
        (lambda s: s.update(columns=["a", "b"]), r"'columns' does not apply to format label_text"),
        (lambda s: s.update(holdout={"test_lines": [[1, 2]]}), r"holdout: only allowed"),
        (lambda s: s["files"].pop("test"), r"needs both 'train' and 'test'"),
        (lambda s: s.update(encoding="klingon"), r"unknown encoding 'klingon'"),
    ],
)
def test_bad_registry_entry(tmp_path, edit, match):
    spec = copy.deepcopy(SPECS["trec"])
    spec["sha256"] = {rel: sha(FILES[rel]) for rel in ("trec/train", "trec/test")}
    edit(spec)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"trec": spec}), encoding="utf-8")
    with pytest.raises(DataError, match=match):
        load_registry(path)


def test_duplicate_registry_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("a: {format: jsonl}\na: {format: csv}\n", encoding="utf-8")
    with pytest.raises(DataError, match="duplicate key 'a'"):
        load_registry(path)


# --------------------------------------------------------------------------- pools


def test_holdout_by_line_ranges(registry, mirror):
    train, test = prepare_dataset(registry["mr"], mirror, n_test=100, seed=0)
    assert test["idx"].tolist() == [1, 2, 5, 6]
    assert train["idx"].tolist() == [3, 4, 7, 8]
    assert test["label"].tolist() == ["negative", "negative", "positive", "positive"]


def test_holdout_stratified_fraction(registry, mirror):
    train, test = prepare_dataset(registry["fin"], mirror, n_test=100, seed=5)
    assert test["label"].value_counts().to_dict() == {"negative": 2, "positive": 2}
    assert len(train) == 16
    again, _ = prepare_dataset(registry["fin"], mirror, n_test=100, seed=6)
    assert again["idx"].tolist() == train["idx"].tolist()  # pool is fixed by holdout.seed, not the run seed


def test_no_overlap_and_no_duplicates(registry, mirror):
    train, test = prepare_dataset(registry["agnews"], mirror, n_test=2, seed=0)
    # train row 4 equals test-pool row 1 (not necessarily selected); rows 2 and 3 are duplicates
    assert train["idx"].tolist() == [1, 2]
    assert len(test) == 2 and test["idx"].is_monotonic_increasing
    assert not set(train["text"]) & set(test["text"])
    assert list(train.columns) == ["uid", "idx", "source", "label", "text"]
    assert train["uid"].dtype == "int64" and not set(train["uid"]) & set(test["uid"])


def test_determinism_and_byte_identical_parquet(tmp_path, registry, mirror):
    first = prepare_dataset(registry["fin"], mirror, n_test=3, seed=1)
    second = prepare_dataset(registry["fin"], mirror, n_test=3, seed=1)
    pd.testing.assert_frame_equal(first[1], second[1])
    subsets = {tuple(prepare_dataset(registry["fin"], mirror, n_test=2, seed=s)[1]["idx"]) for s in range(10)}
    assert len(subsets) > 1  # the seed does change the subset
    a, b = tmp_path / "a" / "test.parquet", tmp_path / "b" / "test.parquet"
    write_split(first[1], a)
    write_split(second[1], b)
    assert a.read_bytes() == b.read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(a), first[1])
    assert [p.name for p in a.parent.iterdir()] == ["test.parquet"]  # temp file replaced, not left over


def test_empty_text_allowed_only_when_configured(tmp_path, mirror):
    text = b"hello \n\nworld \n"
    (mirror / "tw/train_text.txt").write_bytes(text)
    (mirror / "tw/train_labels.txt").write_bytes(b"0\n0\n1\n")
    spec = {**copy.deepcopy(SPECS["tweet"]), "allow_empty_text": True}
    files = {**FILES, "tw/train_text.txt": text, "tw/train_labels.txt": b"0\n0\n1\n"}
    reg = load_registry(write_registry(tmp_path / "r.yaml", {"tweet": spec}, files))
    assert len(read_split(reg["tweet"], mirror, "train")) == 3
    train, _ = prepare_dataset(reg["tweet"], mirror, n_test=1, seed=0)
    assert train["idx"].tolist() == [1, 3]


def test_hub_source(registry, mirror, monkeypatch):
    with pytest.raises(DataError, match="needs a 'hub' entry"):
        prepare_dataset(registry["trec"], mirror, n_test=1, seed=0, source="hub")

    tables = {
        "train": pd.DataFrame({"text": ["good day ", "bad day"], "label": [0, 1]}),
        "test": pd.DataFrame({"text": ["good day", "ok"], "label": [0, 0]}),
    }
    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return types.SimpleNamespace(to_pandas=lambda: tables[split])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    train, test = prepare_dataset(registry["tweet"], mirror, n_test=5, seed=0, source="hub")
    assert calls == [("org/tweets", "hate", "train"), ("org/tweets", "hate", "test")]
    assert train[["label", "text"]].values.tolist() == [["hate", "bad day"]]
    assert test["source"].iloc[0] == "hub:org/tweets/hate:test"


# --------------------------------------------------------------------------- real registry / mirror


def test_real_registry_is_valid():
    registry = load_registry(REPO / "config" / "datasets.yaml")
    assert {"sst2", "agnews", "cb", "mr", "trec", "tweet_hate", "dbpedia"} <= set(registry)


# MANIFEST row counts of the files each registry split reads (test = val where test is unlabeled)
REAL_COUNTS = {
    "sst2": {"train": 6920, "test": 1821},
    "sst5": {"train": 8544, "test": 2210},
    "agnews": {"train": 400, "test": 7600},
    "cb": {"train": 250, "test": 56},
    "rte": {"train": 2490, "test": 277},
    "subj": {"all": 10000},
    "mr": {"all": 10662},
    "trec": {"train": 5452, "test": 500},
    "financial_phrasebank": {"all": 2264},
    "tweet_hate": {"train": 9000, "test": 2970},
    "tweet_irony": {"train": 2862, "test": 784},
    "tweet_offensive": {"train": 11916, "test": 860},
    "dbpedia": {"train": 1400, "test": 100},
}
REAL_LABELS = {  # a few MANIFEST label distributions, to catch a wrong label_map
    ("trec", "train"): {
        "abbreviation": 86,
        "description": 1162,
        "entity": 1250,
        "human": 1223,
        "location": 835,
        "number": 896,
    },
    ("financial_phrasebank", "all"): {"negative": 303, "neutral": 1391, "positive": 570},
    ("agnews", "test"): {"world": 1900, "sports": 1900, "business": 1900, "technology": 1900},
    ("subj", "all"): {"subjective": 5000, "objective": 5000},
    ("cb", "test"): {"entailment": 23, "contradiction": 28, "neutral": 5},
}


@pytest.mark.skipif(not os.environ.get("ICLGD_MIRROR"), reason="set ICLGD_MIRROR to the raw-data mirror dir")
def test_real_mirror():
    mirror = Path(os.environ["ICLGD_MIRROR"])
    registry = load_registry(REPO / "config" / "datasets.yaml")
    assert set(registry) == set(REAL_COUNTS)
    for name, spec in registry.items():
        for split, expected in REAL_COUNTS[name].items():
            df = read_split(spec, mirror, split)
            assert len(df) == expected, (name, split)
            if (name, split) in REAL_LABELS:
                assert df["label"].value_counts().to_dict() == REAL_LABELS[name, split]
    train, test = prepare_dataset(registry["mr"], mirror, n_test=10_000, seed=0)
    assert (len(train), len(test)) == (8662, 2000)

"""Tests for iclgd.core.data on tiny fixture mirrors built in tmp_path (one per raw format).

The real mirror is only read by `test_real_mirror`: config/config.yaml's data.mirror_dir (from the repository
root), else $ICLGD_MIRROR; skipped when neither exists.
"""

from __future__ import annotations

import copy
import os
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml

from iclgd.core.data import DataError, load_registry, prepare_dataset, read_split, write_split
from data_support import FILES, SPECS, sha, write_registry

REPO = Path(__file__).resolve().parents[2]


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


#: config/config.yaml's data.mirror_dir: relative to the repository root, the mirror beside a clean clone.
MIRROR_DIR = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"]["mirror_dir"]


def real_mirror() -> Path | None:
    """The raw-data mirror: data.mirror_dir if it is a directory, else $ICLGD_MIRROR if set and one; else None."""
    for candidate in (REPO / MIRROR_DIR, os.environ.get("ICLGD_MIRROR")):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def test_real_mirror():
    mirror = real_mirror()
    if mirror is None:
        pytest.skip(f"no raw-data mirror: neither data.mirror_dir ({REPO / MIRROR_DIR}) nor $ICLGD_MIRROR "
                    "is a directory")
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

"""The dataset registry's checks (iclgd.core.registry): schema errors name the key, cross-key rules hold,
duplicate YAML keys are refused."""

from __future__ import annotations

import copy

import pytest
import yaml

from iclgd.core.registry import DataError, load_registry
from data_support import FILES, SPECS, sha


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

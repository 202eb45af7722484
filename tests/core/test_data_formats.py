"""The raw file formats of the data mirror (iclgd.core.data_formats), parsed from hand-written text: one record
per row with its line number, the errors naming file and line, digests checked before parsing, and lines split
on "\\n" only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from iclgd.core.data_formats import PARSERS, Record, decode, parse_parallel, read_verified
from iclgd.core.registry import DataError

F = Path("mirror/f.txt")


def parse(fmt: str, text: str, opts: dict | None = None, fields: tuple[str, ...] = ("text",)) -> list[Record]:
    return list(PARSERS[fmt](text, opts or {}, list(fields), F))


def test_label_text_splits_at_the_first_separator_and_keeps_u0085_inside_a_line():
    got = parse("label_text", "NUM:dist How far \x85 is it ?\r\nHUM:ind Who ?", {"label_sep": " "})
    assert got == [Record(1, 1, "NUM:dist", {"text": "How far \x85 is it ?"}), Record(2, 2, "HUM:ind", {"text": "Who ?"})]
    with pytest.raises(DataError, match=r"f\.txt:2: no ' ' between label and text"):
        parse("label_text", "1 ok\nnolabel\n", {"label_sep": " "})
    with pytest.raises(DataError, match=r"f\.txt:2: empty line"):
        parse("label_text", "1 ok\n\n0 bad\n", {"label_sep": " "})


def test_at_suffix_takes_the_label_after_the_last_at():
    assert parse("at_suffix", "mail me @ home@positive\n") == [Record(1, 1, "positive", {"text": "mail me @ home"})]
    with pytest.raises(DataError, match=r"f\.txt:1: no '@' before the label"):
        parse("at_suffix", "no label here\n")


def test_jsonl_picks_and_joins_the_mapped_keys():
    opts = {"label_key": "label", "sources": {"text": ["title", "body"]}, "join": " - "}
    got = parse("jsonl", '{"title": " A ", "body": "b", "label": 2}\n', opts)
    assert got == [Record(1, 1, 2, {"text": "A - b"})]  # each part stripped, then joined
    for text, error in [('{"title": "A", "body": "b"}', "missing label key 'label'"),
                        ('{"title": "A", "label": 1}', "missing key 'body' \\(for field 'text'\\)"),
                        ('{"title": 3, "body": "b", "label": 1}', "key 'title' must be a string, got int"),
                        ('[1, 2]', "expected a JSON object, got list"), ('{"title": ', "bad JSON")]:
        with pytest.raises(DataError, match=rf"f\.txt:2: {error}"):
            parse("jsonl", '{"title": "x", "body": "y", "label": 0}\n' + text + "\n", opts)


def test_csv_counts_rows_and_the_line_each_starts_on():
    opts = {"columns": ["label", "title", "body"], "label_key": "label", "sources": {"text": ["title", "body"]},
            "join": " "}
    got = parse("csv", '"1","two\nlines","x"\n"2","t","y"\n', opts)
    assert [(r.idx, r.line, r.label, r.values["text"]) for r in got] == [(1, 1, "1", "two\nlines x"), (2, 3, "2", "t y")]
    with pytest.raises(DataError, match=r"f\.txt:3: expected 3 columns \['label', 'title', 'body'\], got 2"):
        parse("csv", '"1","two\nlines","x"\n"2","t"\n', opts)


def test_decode_names_the_line_of_a_bad_byte():
    assert decode("caf\xe9".encode("latin-1"), "latin-1", F) == "caf\xe9"
    with pytest.raises(DataError, match=r"f\.txt:2: cannot decode as utf-8: .*\(set 'encoding'\)"):
        decode(b"fine\nbad \xff byte\n", "utf-8", F)


def test_read_verified_checks_the_digest_before_anything_is_parsed(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"1 ok\n")
    spec = {"name": "toy", "sha256": {"d/a.txt": hashlib.sha256(b"1 ok\n").hexdigest(), "d/b.txt": "0" * 64}}
    assert read_verified(spec, tmp_path, "d/a.txt", "train") == b"1 ok\n"
    (tmp_path / "d" / "b.txt").write_bytes(b"changed")
    with pytest.raises(DataError, match=r"b\.txt: sha256 mismatch: expected 0{64}, got"):
        read_verified(spec, tmp_path, "d/b.txt", "test")
    with pytest.raises(DataError, match=r"file not found \(dataset 'toy', split 'test'\).*data\.mirror_dir"):
        read_verified(spec, tmp_path, "d/missing.txt", "test")
    with pytest.raises(DataError, match=r"does not exist \(it is set by config key data\.mirror_dir\)"):
        read_verified(spec, tmp_path / "nope", "d/a.txt", "train")


def test_parallel_lines_pair_text_and_label_by_line_and_refuse_a_mismatch(tmp_path):
    files = {"t.txt": b"good day \nbad day\n", "l.txt": b"0\n1\n", "short.txt": b"0\n"}
    for rel, data in files.items():
        (tmp_path / rel).write_bytes(data)
    spec = {"name": "tw", "fields": ["text"], "sha256": {rel: hashlib.sha256(d).hexdigest() for rel, d in files.items()}}
    got = list(parse_parallel(spec, tmp_path, {"text": "t.txt", "labels": "l.txt", "encoding": "utf-8"}, "train"))
    assert got == [Record(1, 1, "0", {"text": "good day "}), Record(2, 2, "1", {"text": "bad day"})]
    with pytest.raises(DataError, match=r"t\.txt has 2 lines but .*short\.txt has 1"):
        list(parse_parallel(spec, tmp_path, {"text": "t.txt", "labels": "short.txt", "encoding": "utf-8"}, "train"))

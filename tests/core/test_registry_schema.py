"""The schema of one dataset registry entry (iclgd.core.registry_schema), applied with jsonschema directly: every
fixture spec (one per raw format) satisfies it, a bad spec is rejected at the key that is wrong, and every format
has its reader options. What the registry adds on top (readable messages, cross-key rules) is tested in
test_registry.py."""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest

from data_support import FILES, PREFIX, SPECS, sha
from iclgd.core import registry_schema

VALIDATOR = jsonschema.Draft202012Validator(registry_schema.SPEC_SCHEMA)


def with_digests(name: str) -> dict:
    """A fixture spec with the sha256 of each of its files, as the registry records them."""
    spec = copy.deepcopy(SPECS[name])
    spec["sha256"] = {rel: sha(data) for rel, data in FILES.items() if rel.startswith(PREFIX[name])}
    return spec


def test_the_schema_is_a_valid_json_schema_that_every_fixture_spec_satisfies():
    jsonschema.Draft202012Validator.check_schema(registry_schema.SPEC_SCHEMA)
    for name in SPECS:
        assert list(VALIDATOR.iter_errors(with_digests(name))) == [], name


@pytest.mark.parametrize(
    "edit,where,what",
    [
        (lambda s: s.update(formt="label_text"), [], "'formt' was unexpected"),
        (lambda s: s.update(format="tsv"), ["format"], "'tsv' is not one of"),
        (lambda s: s.update(classes=["human"]), ["classes"], "should be non-empty|too short"),
        (lambda s: s["label_map"].update(LOC="Location"), ["label_map", "LOC"], "does not match"),
        (lambda s: s["sha256"].update({"trec/test": "abc"}), ["sha256", "trec/test"], "does not match"),
        (lambda s: s.pop("template"), [], "'template' is a required property"),
        (lambda s: s.update(holdout={"test_fraction": 1.5, "seed": 0}), ["holdout", "test_fraction"], "maximum"),
    ],
)
def test_a_bad_spec_is_rejected_at_the_key_that_is_wrong(edit, where, what):
    spec = with_digests("trec")
    edit(spec)
    errors = list(VALIDATOR.iter_errors(spec))
    assert errors, "the bad spec passed"
    error = jsonschema.exceptions.best_match(errors)
    assert list(error.absolute_path) == where
    assert re.search(what, error.message), error.message


def test_every_format_has_its_reader_options_and_every_option_a_schema():
    assert set(registry_schema.FORMAT_OPTIONS) == set(registry_schema.FORMATS)
    options = set().union(registry_schema.COMMON_OPTIONS, *registry_schema.FORMAT_OPTIONS.values())
    assert options == set(registry_schema.READER_OPTIONS)
    assert registry_schema.READER_OPTIONS["format"] == {"enum": registry_schema.FORMATS}

"""The paper's LaTeX helpers (iclgd.core.paper): macro names, merged macro files, rendered macros and tables,
number formats."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from iclgd.core import paper


@pytest.mark.parametrize(
    "parts,name",
    [(("acc", "icl", "smollm2-135m", "sst2", "k", 8), "AccIclSmollmTwoOneThreeFiveMSstTwoKEight"),
     (("gain", "tweet_hate"), "GainTweetHate")],
)
def test_macro_names_are_letters_only(parts, name):
    assert paper.macro_name(*parts) == name


def test_merge_macros_refuses_conflicts(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"X": "1"}))
    (tmp_path / "b.json").write_text(json.dumps({"X": "2"}))
    (tmp_path / "c.json").write_text(json.dumps({"X": "1", "Y": "3"}))
    assert paper.merge_macros([tmp_path / "a.json", tmp_path / "c.json"]) == {"X": "1", "Y": "3"}
    with pytest.raises(ValueError, match="defined twice"):
        paper.merge_macros([tmp_path / "a.json", tmp_path / "b.json"])


def test_render_macros_and_tables(tmp_path):
    paper.render_macros({"AccX": "50.0", "Name": "sst\\_2"}, tmp_path / "m.tex")
    assert "\\newcommand{\\AccX}{50.0}" in (tmp_path / "m.tex").read_text()
    with pytest.raises(ValueError, match="letters only"):
        paper.render_macros({"Acc1": "1"}, tmp_path / "bad.tex")
    table = paper.booktabs_table(pd.DataFrame({"data_set": ["a_b"], "acc": ["1.0"]}), "Cap.", "tab:x")
    assert "data\\_set & acc \\\\" in table and "a\\_b & 1.0 \\\\" in table and "\\toprule" in table
    assert paper.fmt(float("nan")) == "--" and paper.fmt(12.345) == "12.3"
    assert paper.fmt(-0.0001, 3) == "0.000" and paper.fmt(-0.02) == "0.0" and paper.fmt(-0.06) == "-0.1"

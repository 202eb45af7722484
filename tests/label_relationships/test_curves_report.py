"""Label-relationship paper outputs from a hand-made claims table."""

from __future__ import annotations

import pandas as pd

from iclgd.label_relationships import curves_report


def claims() -> pd.DataFrame:
    base = {"model": "m", "dataset": "sst2", "positions": "5-17", "n": 24}
    rows = [
        ("labels_matter", "random", "default - random", "loglik", 0.25, 0.1, 0.4),
        ("labels_matter", "random", "default - random", "entropy", -0.05, -0.1, 0.0),
        ("labels_matter", "random", "default - random", "correct", 0.1, 0.0, 0.2),
        ("flip_learned", "flipped", "last - position 1", "agree_presented", 0.3, 0.2, 0.4),
        ("flip_learned", "flipped", "default correct - flipped", "agree_presented", 0.2, 0.1, 0.3),
        ("recency", "default_to_flipped", "D->F - F->D", "correct", -0.4, -0.5, -0.3),
        ("recency", "default_to_flipped", "D->F - F->D", "agree_presented", 0.9, 0.8, 1.0),  # recent mapping, not default
        ("recency", "default_to_flipped", "D->F - F->D", "loglik", -1.0, -1.2, -0.8),  # not a headline row
    ]
    cols = ["claim", "condition", "contrast", "metric", "value", "lo", "hi"]
    return pd.DataFrame([base | dict(zip(cols, r)) for r in rows])


def test_headline_rows_pick_the_six_gaps_in_order():
    rows = curves_report.headline_rows(claims())
    assert len(rows) == 6
    assert rows["value"].tolist() == [0.25, -0.05, 0.1, 0.3, 0.2, -0.4]


def test_table_and_sentence_carry_the_numbers():
    tex = curves_report.claims_table_tex(claims())
    assert "0.250 \\\\ {}[0.100, 0.400]" in tex and "\\textit{\\texttt{m}}" in tex and "sst2 &" in tex
    head = tex[tex.index("\\toprule"):]
    assert head.index("log-lik.") < head.index("recency")  # the columns in HEADLINE order
    text = curves_report.claims_summary(claims())
    assert "by 0.250 [0.100, 0.400]" in text and "-0.400 [-0.500, -0.300]" in text
    assert curves_report.claims_macros(claims(), 17, 24) == {"CurvesNDemos": "17", "CurvesRepetitions": "24", "CurvesNRuns": "1"}


def test_long_dataset_names_stack_at_underscores():
    """config/paper.yaml's financial_phrasebank made the claims table 33 pt too wide on one line."""
    from iclgd.label_relationships.curves_report import _dataset_cell

    assert _dataset_cell("financial_phrasebank") == "financial\\_\nphrasebank"
    assert _dataset_cell("tweet_hate") == "tweet\\_hate" and _dataset_cell("sst2") == "sst2"

"""Label-relationship paper outputs from a hand-made claims table."""

from __future__ import annotations


import pandas as pd
import pytest

from iclgd.labels import report as curves_report
from text_support import numbers_per_sentence




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
    assert "by 0.250 (CI excludes zero)" in text and "is -0.400 (CI excludes zero)" in text
    assert numbers_per_sentence(text) == [3] and "\\ref{tab:label_claims}" in text  # the bounds are in the table
    wide = claims().assign(lo=lambda f: f["lo"].where(f["metric"] != "loglik", -0.1))
    assert "by 0.250 (CI includes zero)" in curves_report.claims_summary(wide)
    assert curves_report.claims_macros(claims(), 17, 24) == {"CurvesNDemos": "17", "CurvesRepetitions": "24", "CurvesNRuns": "1"}


def test_long_dataset_names_stack_at_underscores():
    """config/paper.yaml's financial_phrasebank made the claims table 33 pt too wide on one line."""
    from iclgd.labels.report import _dataset_cell

    assert _dataset_cell("financial_phrasebank") == "financial\\_\nphrasebank"
    assert _dataset_cell("tweet_hate") == "tweet\\_hate" and _dataset_cell("sst2") == "sst2"


def test_position_means_are_over_contexts_with_a_t_interval():
    """Per position, the mean over contexts and a 95% t-interval: 3 contexts -> t(0.975, 2) = 4.3027."""
    values = {(1, 0): -1.0, (1, 1): -2.0, (1, 2): -3.0, (2, 0): -0.5, (2, 1): -0.5, (2, 2): -0.5}
    table = pd.DataFrame([{"model": "m", "dataset": "sst2", "condition": "default", "repetition": rep, "position": pos,
                           "loglik": v} for (pos, rep), v in values.items()]
                         + [{"model": "m", "dataset": "sst2", "condition": "random", "repetition": 0, "position": 1,
                             "loglik": -0.7}])
    out = curves_report.position_means(table, ["loglik"]).set_index(["condition", "position"])
    first = out.loc[("default", 1)]
    # mean -2, sd 1: half-width 4.3027 / sqrt(3) = 2.4841
    assert first["loglik"] == pytest.approx(-2.0) and first["n"] == 3
    assert first["loglik_hi"] - first["loglik"] == pytest.approx(2.4841, abs=1e-4)
    assert first["loglik"] - first["loglik_lo"] == pytest.approx(2.4841, abs=1e-4)
    assert out.loc[("default", 2), ["loglik", "loglik_lo", "loglik_hi"]].tolist() == [-0.5, -0.5, -0.5]
    assert out.loc[("random", 1), ["loglik_lo", "loglik_hi", "n"]].tolist() == [-0.7, -0.7, 1]  # one context: no width


def test_the_figure_draws_log_likelihoods_of_at_most_three_conditions():
    """The figure plots the quantities the claims test: label log-likelihoods, not 0/1 accuracy."""
    assert curves_report.figure_metrics() == ["loglik", "loglik_presented"]
    assert curves_report.COLUMNS[0][1:] == (["default", "random", "flipped"], "loglik")
    assert all(len(conditions) <= 3 for _, conditions, _ in curves_report.COLUMNS)

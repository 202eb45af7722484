"""Accuracy tables and bootstrap CIs against hand-computed cases; paper helpers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from iclgd.core import metrics, paper, stats


def records(rows):
    """rows: (seed, uid, label_index, pred_index, full_correct)."""
    base = {"model": "m", "dataset": "d", "method": "icl", "k": 2, "optimizer": "none", "subset": "none", "lr": 0.0, "epoch": 0}
    return pd.DataFrame([base | dict(zip(["seed", "uid", "label_index", "pred_index", "full_correct"], r)) for r in rows])


def test_accuracy_averages_seeds_within_examples():
    # uid 0: right under both seeds; uid 1: right under one of two; uid 2: never -> (1 + .5 + 0) / 3
    recs = records([(0, 0, 1, 1, True), (1, 0, 1, 1, False), (0, 1, 0, 0, False), (1, 1, 0, 1, False),
                    (0, 2, 1, 0, False), (1, 2, 1, 0, False)])
    row = metrics.accuracy_table(recs, n_boot=200, ci=0.95, seed=0).iloc[0]
    assert row["acc"] == pytest.approx(50.0)
    assert row["acc_full"] == pytest.approx(100 / 6)
    assert row["n_examples"] == 3 and row["n_seeds"] == 2
    assert row["acc_lo"] <= row["acc"] <= row["acc_hi"]
    per_seed = metrics.per_seed_accuracy(recs).set_index("seed")["acc"]
    assert per_seed[0] == pytest.approx(200 / 3) and per_seed[1] == pytest.approx(100 / 3)


def test_bootstrap_ci_constant_and_known_spread():
    assert stats.bootstrap_ci(np.ones(10), 100, 0.95, 0) == (1.0, 1.0, 1.0)
    values = np.r_[np.zeros(500), np.ones(500)]
    mean, lo, hi = stats.bootstrap_ci(values, 2000, 0.95, 0)
    se = 0.5 / np.sqrt(1000)  # binomial standard error at p = 0.5
    assert mean == 0.5
    assert lo == pytest.approx(0.5 - 1.96 * se, abs=0.01) and hi == pytest.approx(0.5 + 1.96 * se, abs=0.01)
    assert stats.bootstrap_ci(values, 2000, 0.95, 0) == (mean, lo, hi)  # seeded


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


def test_scale_paragraph_states_the_run_from_config():
    from iclgd.core import provenance

    text = provenance.scale_paragraph(
        ["smol_lm", "gemma"], {"demo_seeds": [0], "optimizers": ["gd"], "subsets": ["all"], "lrs": [1e-4], "max_epochs": 5,
         "target_loss": 0.2, "lrs_by_model": {"gemma": [1e-3]}},
        {"n_demos": 17, "repetitions": 16}, ["smol_lm"], ["smol_lm"],
    )
    assert "Fine-tuning ran for smol\\_lm (of smol\\_lm, gemma) on demonstration seeds 0" in text
    assert "5 epochs" in text and "below 0.2 nats" in text and "smol\\_lm: 0.0001" in text
    assert "17 demonstrations and 16 random contexts" in text


def test_scale_paragraph_lists_what_was_left_out():
    from iclgd.core import provenance

    finetune = {"demo_seeds": [0], "optimizers": ["gd", "adam"], "subsets": ["all"], "lrs": [1e-4], "max_epochs": 5,
                "target_loss": 0.2, "skip": [{"model": "llama-7b", "optimizer": "adam", "subset": "all"}]}
    curves = {"n_demos": 33, "repetitions": 500, "skip": [{"model": "llama-7b", "dataset": "rte"}]}
    order = {"skip": [{"model": "llama-7b", "optimizer": "adam"}]}
    kernel = {"n_demos": 16, "skip": [{"model": "llama-7b", "dataset": "mr"}]}
    text = provenance.scale_paragraph(["llama-7b"], finetune, curves, ["llama-7b"], ["llama-7b"], order, kernel)
    assert "adam on all of llama-7b" in text and "adam for llama-7b" in text and "llama-7b on rte" in text
    assert "kernel study because 16 demonstrations" in text and "llama-7b on mr" in text
    assert "left out" not in provenance.scale_paragraph(["m"], finetune | {"skip": []}, curves | {"skip": []},
                                                        ["m"], ["m"], {"skip": []}, kernel | {"skip": []}).lower()

"""Accuracy tables, Rec2FTP and bootstrap CIs against hand-computed cases; paper helpers."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iclgd.core import metrics, paper, stats

REPO = Path(__file__).resolve().parents[2]


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


def test_rec2ftp_hand_case_and_empty_denominator():
    # ex:    1  2  3  4  5  6
    zero = [0, 0, 0, 0, 1, 1]
    ft = [1, 1, 1, 0, 1, 1]
    icl = [1, 0, 1, 1, 1, 0]
    # ZS wrong & FT right: examples 1, 2, 3 -> n = 3; ICL right on 1 and 3 -> 2/3
    # (ex 4: FT wrong; ex 5, 6: ZS already right -> outside the denominator whatever ICL does)
    value, n_fixed = metrics.rec2ftp(zero, ft, icl)
    assert n_fixed == 3 and value == pytest.approx(2 / 3)
    value, n_fixed = metrics.rec2ftp([1, 1, 0], [1, 0, 0], [1, 1, 1])  # nothing that FT newly fixes
    assert n_fixed == 0 and math.isnan(value)


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


def scale_run(config: dict, tmp_path, **blocks):
    from iclgd.core.config import resolve

    config = copy.deepcopy(config) | {"data": {**config["data"], "mirror_dir": str(tmp_path)}}
    for name, values in blocks.items():
        config[name] = config[name] | values
    return resolve(config, REPO)


def test_scale_paragraph_states_the_run_from_config(default_config, tmp_path):
    from iclgd.core import provenance

    run = scale_run(default_config, tmp_path, finetune={"models": ["smollm2-135m"], "demo_seeds": [0],
                                                        "optimizers": ["gd"], "subsets": ["all"], "lrs": [1e-4],
                                                        "max_epochs": 5, "lrs_by_model": {"gemma3-270m": [1e-3]}},
                    labels={"models": ["smollm2-135m"], "n_demos": 17, "repetitions": 16})
    text = provenance.scale_paragraph(run)
    assert "Fine-tuning ran for smollm2-135m (of smollm2-135m, gemma3-270m) on demonstration seeds 0" in text
    assert "5 epochs" in text and "below 0.2 nats" in text and "smollm2-135m: 0.0001" in text
    assert "17 demonstrations and 16 random contexts" in text and "left out" not in text.lower()


def test_scale_paragraph_lists_what_was_left_out(default_config, tmp_path):
    from iclgd.core import provenance

    run = scale_run(default_config, tmp_path, finetune={"skip": [{"model": "gemma3-270m", "optimizer": "adam",
                                                                  "subset": "all"}]},
                    labels={"n_demos": 33, "skip": [{"model": "gemma3-270m", "dataset": "sst2"}]},
                    order={"skip": [{"model": "smollm2-135m", "optimizer": "adam"}]},
                    kernel={"n_demos": 16, "skip": [{"model": "gemma3-270m", "dataset": "agnews"}]})
    text = provenance.scale_paragraph(run)
    assert "adam on all of gemma3-270m" in text and "adam for smollm2-135m" in text and "gemma3-270m on sst2" in text
    assert "kernel study because 16 demonstrations" in text and "gemma3-270m on agnews" in text

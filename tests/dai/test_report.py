"""Dai-metrics report: tables from captures, summary levels, Rec2FTP edge cases, paper outputs."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from iclgd.dai import report

from iclgd.dai import similarity
from iclgd.dai.capture import DaiError
from text_support import numbers_per_sentence




def synthetic_arrays(n_q: int = 3, n_layers: int = 2, dim: int = 4, heads: int = 2, width: int = 3) -> dict:
    rng = np.random.default_rng(0)
    arrays = {"k": np.array([1, 2]), "seed": np.array([0, 0]), "uid": np.arange(10, 10 + n_q, dtype=np.uint64),
              "label_index": np.zeros(n_q, dtype=int)}
    shapes = {"outputs": (n_q, n_layers, dim), "scores": (n_q, n_layers, heads, width)}
    for name, lead in (("zs", ()), ("icl", (2,)), ("ft", (2,))):
        for field, shape in shapes.items():
            arrays[f"{name}_{field}"] = rng.normal(size=lead + shape).astype(np.float32)
        arrays[f"{name}_n_query"] = np.broadcast_to(np.full(n_q, width), lead + (n_q,))
        arrays[f"{name}_n_tokens"] = arrays[f"{name}_n_query"]
        arrays[f"{name}_label_logprobs"] = np.zeros(lead + (n_q, 2), dtype=np.float32)
    return arrays


def test_query_layer_frame_matches_the_metric_functions():
    arrays = synthetic_arrays()
    correct = pd.DataFrame({"k": [1] * 3 + [2] * 3, "seed": 0, "uid": [10, 11, 12] * 2,
                            "zs_correct": False, "icl_correct": True, "ft_correct": [True, False, True] * 2})
    layers = report.query_layer_frame(arrays, correct, "m", "d", seed=0)
    assert len(layers) == 2 * 3 * 2 and layers["n_layers"].eq(2).all()
    got = layers[(layers["k"] == 2) & (layers["uid"] == 11) & (layers["layer"] == 1)].iloc[0]
    assert got["simaou"] == pytest.approx(similarity.simaou(arrays["icl_outputs"][1], arrays["ft_outputs"][1],
                                                     arrays["zs_outputs"])[1, 1])
    assert got["zsl_simam"] == pytest.approx(similarity.simam(arrays["icl_scores"][1], arrays["zs_scores"])[1, 1])
    assert not got["ft_correct"] and got["icl_correct"]
    queries = report.query_frame(layers)
    assert len(queries) == 6
    row = queries[(queries["k"] == 2) & (queries["uid"] == 11)].iloc[0]
    assert row["simaou"] == pytest.approx(layers.loc[(layers["k"] == 2) & (layers["uid"] == 11), "simaou"].mean())
    assert row["simam_gain"] == pytest.approx(row["simam"] - row["zsl_simam"])
    with pytest.raises(DaiError, match="without correctness"):
        report.query_layer_frame(arrays, correct[correct["k"] == 1], "m", "d", seed=0)


def hand_queries() -> pd.DataFrame:
    """Two datasets; in 'a' FT fixes queries 0 and 1 of which ICL fixes 0, in 'b' FT fixes nothing."""
    return pd.DataFrame({
        "model": "m", "dataset": ["a"] * 4 + ["b"] * 2, "k": [1, 1, 2, 2, 1, 1], "seed": 0,
        "uid": [0, 1, 0, 1, 0, 1], "n_layers": 2,
        "zs_correct": [False, False, False, True, True, True],
        "ft_correct": [True, True, False, True, True, False],
        "icl_correct": [True, False, True, True, False, True],
        "simaou": [0.2, 0.4, 0.0, 0.2, 0.1, 0.1], "random_simaou": 0.0,
        "simam": [0.9, 0.8, 0.7, 0.6, 0.5, np.nan], "zsl_simam": 0.5,
    }).assign(simaou_gain=lambda f: f["simaou"] - f["random_simaou"], simam_gain=lambda f: f["simam"] - f["zsl_simam"])


def test_summary_levels_rec2ftp_and_undefined_denominator(boot):
    summary = report.summarise(hand_queries(), boot)
    levels = set(zip(summary["dataset"], summary["k"]))
    assert levels == {("a", "1"), ("a", "2"), ("b", "1"), ("a", "all"), ("b", "all"), ("all", "all")}
    a = summary[(summary["dataset"] == "a") & (summary["k"] == "all")].iloc[0]
    assert a["rec2ftp"] == 0.5 and a["rec2ftp_n"] == 2  # of uid 0 and 1 at k=1, ICL fixes uid 0
    assert a["icl_fix_rate"] == pytest.approx(2 / 3) and a["zs_wrong_n"] == 3
    assert a["simaou"] == pytest.approx(0.2) and a["n_queries"] == 4
    b = summary[(summary["dataset"] == "b") & (summary["k"] == "all")].iloc[0]
    assert np.isnan(b["rec2ftp"]) and b["rec2ftp_n"] == 0 and np.isnan(b["rec2ftp_lo"])
    assert b["simam"] == pytest.approx(0.5)  # the undefined query is skipped
    pooled = summary[summary["dataset"] == "all"].iloc[0]
    assert pooled["rec2ftp"] == 0.5 and pooled["n_queries"] == 6
    assert pooled["simaou_lo"] <= pooled["simaou"] <= pooled["simaou_hi"]


def test_paper_outputs_say_undefined_and_name_every_row(tmp_path, boot, dai_block):
    summary = report.summarise(hand_queries(), boot)
    tex = report.dai_table_tex(summary)
    assert "undefined (0)" in tex and "\\label{tab:dai}" in tex and "\\label{tab:dai_sim}" in tex
    accuracy, similarity = tex.split("\\label{tab:dai_sim}")
    assert accuracy.count("\\texttt{a} &") == similarity.count("\\texttt{a} &") == 1
    assert accuracy.count("all &") == similarity.count("all &") == 1
    assert "50 [0, 100] (2)" in tex  # Rec2FTP of dataset a in percent: ICL fixes 1 of the 2 FT fixes
    one = report.summarise(hand_queries().query("dataset == 'a'"), boot)
    assert "all &" not in report.dai_table_tex(one)  # no "all" row repeating the only dataset
    text = report.dai_summary(summary)
    assert "Rec2FTP is 50\\%" in text and "in 0 of the 1 runs where it is defined" in text
    assert "Rec2FTP is 50\\% against 67\\%" in text and "SimAOU is 0.167 against 0.000" in text
    assert "tab:dai}" in text and "tab:dai_sim}" in text
    assert numbers_per_sentence(text) == [2, 3, 3, 2]  # per model: Rec2FTP, similarities; then the run counts
    cfg = {**dai_block, "datasets": ["a", "b"], "n_demos": [1, 2], "lr": "1e-3", "epochs": 1, "n_queries": 16}
    macros = report.dai_macros(summary, cfg)
    assert macros["DaiMRec"] == "50" and macros["DaiMBRec"] == "undefined" and macros["DaiLr"] == "0.001"
    assert macros["DaiK"] == "1, 2" and macros["DaiNQueries"] == "16" and macros["DaiEpochs"] == "1"
    assert macros["DaiDatasets"] == "\\texttt{a}, \\texttt{b}"
    assert macros["DaiNRuns"] == "2" and all(v for v in macros.values())
    layers = pd.DataFrame({"model": "m", "layer": [0, 1], "n_layers": 2, "n": 3,
                           **{f"{m}{s}": [0.1, 0.2] for m in report.METRICS for s in ("", "_lo", "_hi")}})
    report.plot_layers(layers, tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.pdf").stat().st_size > 0 and (tmp_path / "f.png").stat().st_size > 0

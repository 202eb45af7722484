"""Paper numbers for the construction section: summaries against hand-computed sparsities."""

from __future__ import annotations

import pandas as pd
import pytest

from iclgd.construction import report


def per_layer(values: dict[str, list[float]], threshold: float = 1e-3) -> pd.DataFrame:
    """A measured table: per projection, one fraction per layer at one threshold."""
    return pd.DataFrame(
        [{"layer": i, "proj": proj, "threshold": threshold, "fraction_below": v}
         for proj, vs in values.items() for i, v in enumerate(vs)]
    )


def test_constructed_fraction_below_is_exact_zero_share():
    table = report.constructed_fraction_below(4).set_index("proj")["fraction_below"]
    # (4 + 4)^2 = 64 entries: W_Q/W_K hold 4 ones; W_V holds W_0 (16) and -I (4)
    assert table["q_proj"] == pytest.approx(1 - 4 / 64)
    assert table["v_proj"] == pytest.approx(1 - 20 / 64)


def test_summary_means_over_layers_and_macros():
    tables = {"m_a": per_layer({"q_proj": [0.1, 0.3], "k_proj": [0.2, 0.2], "v_proj": [0.0, 0.5]})}
    summary = report.sparsity_summary(tables, {"m_a": 4})
    got = summary.set_index("proj")["measured"]
    assert got["q_proj"] == pytest.approx(0.2) and got["v_proj"] == pytest.approx(0.25)
    macros = report.sparsity_macros(summary, 1e-3)
    assert macros["SparsityThreshold"] == "10^{-3}"
    assert macros["SparsityMaxMeasured"] == "25.00" and macros["SparsityMaxMeasuredWhere"] == "m\\_a v\\_proj"
    assert macros["SparsityMinConstructed"] == "68.75"  # W_V: 1 - 20/64
    assert macros["ConstructedSparsityLlamaQK"] == "99.994"
    tex = report.sparsity_table_tex(summary)
    assert "m\\_a" in tex and "20.00" in tex and "\\label{tab:sparsity}" in tex
    assert "$<10^{-3}$" in tex and "< 1e" not in tex  # "<" in text mode prints as an inverted "!"


def test_lsa_macros_format():
    headline = {"final_pred_cosine": 0.9999634, "final_pred_rel_l2": 0.00921, "final_sens_cosine": 0.99997,
                "lsa_loss": 0.538812, "gd_loss": 0.538581, "gd_lr": 0.8123, "constructed_vs_gd_pred_l2": 3.2e-15,
                "order_std_constructed": 1.7e-16, "order_std_trained": 2.0e-8}
    macros = report.lsa_macros(headline)
    assert macros["LsaPredCosine"] == "0.999963" and macros["LsaConstructedPredLTwo"] == "$3.2\\times 10^{-15}$"
    assert all(k.isalpha() for k in macros)

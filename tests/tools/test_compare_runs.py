"""Value-by-value comparison of two runs' small outputs, against hand-computed cases."""

import json
import math

import pytest

from iclgd.tools.compare_runs import Tolerance, compare_runs, compare_value, parse_number, read_cells, small_outputs

MACROS = "paper/generated/macros.json"


@pytest.mark.parametrize("text, value, unit", [
    ("41.7", 41.7, 0.1), ("60", 60.0, 0.0), ("0.18333333333333332", 0.18333333333333332, 1e-17),
    (r"$2.3\times 10^{-6}$", 2.3e-6, 1e-7), ("1.5e-05", 1.5e-5, 1e-6), (r"$\infty$", math.inf, 0.0),
])
def test_parse_number_reads_value_and_last_place(text, value, unit):
    got, got_unit = parse_number(text)
    assert got == pytest.approx(value) and got_unit == pytest.approx(unit)


@pytest.mark.parametrize("text", ["inconclusive", "--", "sst2, rte", "b179c9523d0e", "10^{-3}"])
def test_text_is_not_a_number(text):
    assert parse_number(text) is None


def test_a_macro_may_move_one_printed_unit_not_two():
    tol = Tolerance(rtol=0.0, atol=0.0)
    assert compare_value(MACROS, "Acc", "41.7", "41.8", tol).ok
    assert not compare_value(MACROS, "Acc", "41.7", "41.9", tol).ok
    # a CSV prints full precision: there 41.7 -> 41.8 is a real change
    assert not compare_value("results/metrics/a.csv", "row 0: acc", "41.7", "41.8", tol).ok


def test_tolerance_is_atol_plus_rtol_times_expected():
    tol = Tolerance(rtol=1e-3, atol=1e-6)
    assert compare_value("x.csv", "k", "2.0", "2.0019", tol).ok            # 0.0019 <= 1e-6 + 0.002
    value = compare_value("x.csv", "k", "2.0", "2.0021", tol)
    assert not value.ok and value.diff == pytest.approx(0.0021) and value.allowed == pytest.approx(0.002001)


def test_text_infinity_and_nan_must_match_exactly():
    tol = Tolerance(rtol=1.0, atol=1.0)
    assert not compare_value("x.csv", "verdict", "reproduced", "inconclusive", tol).ok
    assert compare_value("x.csv", "n_needed", "inf", "inf", tol).ok
    assert not compare_value("x.csv", "n_needed", "inf", "6.0", tol).ok
    assert compare_value("x.csv", "p", "nan", "nan", tol).ok and not compare_value("x.csv", "p", "nan", "0.5", tol).ok


def test_read_cells_drops_measured_fields(tmp_path):
    (tmp_path / "a.csv").write_text("model,acc,train_seconds,max_rss_mb\nm,0.5,12.1,900\n")
    assert read_cells(tmp_path / "a.csv") == {"row 0: model": "m", "row 0: acc": "0.5", "(rows)": "1"}
    (tmp_path / "m.json").write_text(json.dumps({"AccX": "41.7", "BenchTotalMinutes": "6.2", "n": {"seconds": 3}}))
    assert read_cells(tmp_path / "m.json") == {"AccX": "41.7"}


def test_compare_runs_reports_missing_files_extra_rows_and_keys(tmp_path):
    exp, obt = tmp_path / "exp", tmp_path / "obt"
    for root, body in ((exp, "k,v\na,1\n"), (obt, "k,v\na,1\nb,2\n")):
        (root / "results/stats").mkdir(parents=True)
        (root / "results/stats/t.csv").write_text(body)
    (exp / "results/metrics").mkdir(parents=True)
    (exp / "results/metrics/gone.csv").write_text("k\n1\n")
    assert small_outputs(exp) == ["results/metrics/gone.csv", "results/stats/t.csv"]
    values, missing = compare_runs(exp, obt, Tolerance())
    assert missing == ["results/metrics/gone.csv"]
    bad = {v.key for v in values if not v.ok}
    assert bad == {"(rows)", "row 1: k", "row 1: v"}


def test_the_relative_tolerance_applies_to_the_column_scale(tmp_path):
    """A difference of two similarities near zero rounds like its operands: the column's largest value."""
    exp, obt = tmp_path / "exp", tmp_path / "obt"
    for root, small in ((exp, "0.002"), (obt, "0.0020001")):
        (root / "results/metrics").mkdir(parents=True)
        (root / "results/metrics/d.csv").write_text(f"sim\n0.9\n{small}\n")
    tol = Tolerance(rtol=1e-6, atol=0.0)
    values, _ = compare_runs(exp, obt, tol)
    moved = next(v for v in values if v.key == "row 1: sim")
    assert moved.scale == 0.9 and moved.allowed == pytest.approx(0.9e-6) and moved.ok   # 1e-7 <= 9e-7
    assert not compare_value("x.csv", "k", "0.002", "0.0020001", tol).ok                 # its own scale: 2e-9

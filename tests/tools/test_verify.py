"""`make verify` on the shipped smoke expected results: a run equal to them passes; planted changes fail,
naming the claim, macro or file."""

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from iclgd.tools import verify as verify_mod
from iclgd.tools.compare_runs import Tolerance
from iclgd.tools.expected import MANIFEST
from iclgd.tools.verify import CLAIMS, MACROS, load_tolerance, verify

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "expected" / "smoke"


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    """(expected, run): a copy of the shipped smoke expected results and a run holding the same files."""
    expected, run = tmp_path / "expected", tmp_path / "run"
    shutil.copytree(SHIPPED, expected)
    for rel in json.loads((expected / MANIFEST).read_text())["files"]:
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(expected / rel, run / rel)
    return expected, run


def edit_claims(run: Path, change) -> dict:
    """Apply `change(rows)` to the run's claims table; returns the row it changed."""
    rows = list(csv.DictReader(io.StringIO((run / CLAIMS).read_text())))
    row = change(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (run / CLAIMS).write_text(buffer.getvalue())
    return row


def test_a_run_equal_to_the_expected_results_passes(pair):
    expected, run = pair
    report = verify(run, expected, load_tolerance())
    assert report.passed, report.failures
    n_claims = len(list(csv.DictReader(io.StringIO((expected / CLAIMS).read_text()))))
    n_macros = len([k for k in json.loads((expected / MACROS).read_text()) if not k.startswith("Bench")])
    assert (len(report.claims), len(report.macros)) == (n_claims, n_macros)


def test_a_flipped_verdict_fails_naming_the_claim(pair):
    expected, run = pair

    def flip(rows):
        row = next(r for r in rows if r["verdict"] == "reproduced")
        row["verdict"] = "inconclusive"
        return row

    row = edit_claims(run, flip)
    report = verify(run, expected, load_tolerance())
    assert not report.passed
    assert [f for f in report.failures if f.startswith(f"claim {row['family']}") and "verdict differs" in f]


def test_an_estimate_within_tolerance_passes_and_past_it_fails(pair):
    expected, run = pair
    tol = Tolerance(rtol=1e-6, atol=1e-9)

    def move(factor):
        def change(rows):
            rows[0]["effect"] = repr(float(rows[0]["effect"]) * factor)
            return rows[0]
        return change

    edit_claims(run, move(1 + 0.5e-6))
    assert verify(run, expected, tol).passed
    row = edit_claims(run, move(1 + 1e-4))
    report = verify(run, expected, tol)
    assert report.failures == [f"claim {row['family']} [{row['model']}/{row['dataset']}]: differs in effect"]


def test_a_macro_past_its_tolerance_fails_naming_it(pair):
    expected, run = pair
    macros = json.loads((run / MACROS).read_text())
    name = next(k for k, v in macros.items() if k.startswith("Acc") and "." in v)
    value = float(macros[name])
    for moved, passes in ((value + 0.1, True), (value + 0.3, False)):   # one printed unit vs three
        (run / MACROS).write_text(json.dumps({**macros, name: f"{moved:.1f}"}))
        report = verify(run, expected, load_tolerance())
        assert report.passed is passes
    assert report.failures and report.failures[0].startswith(f"macro \\{name}: expected {macros[name]}")


def test_a_missing_output_fails_naming_it(pair):
    expected, run = pair
    (run / "results/metrics/icl_accuracy.csv").unlink()
    report = verify(run, expected, load_tolerance())
    assert "missing output: results/metrics/icl_accuracy.csv" in report.failures


def test_main_exits_nonzero_and_writes_the_summary(pair, capsys):
    expected, run = pair
    (run / MACROS).write_text(json.dumps({**json.loads((run / MACROS).read_text()), "KGrid": "0, 8"}))
    with pytest.raises(SystemExit) as stop:
        verify_mod.main(["--run", str(run), "--expected", str(expected)])
    assert stop.value.code == 1
    out = capsys.readouterr().out
    assert "DISAGREES: macro \\KGrid: expected 0, 4, obtained 0, 8" in out and "verify FAILED" in out
    summary = (run / "results" / "verify.md").read_text()
    assert summary.startswith(f"# make verify: {run}: FAILED (1 disagreements)") and "| KGrid | 0, 4 | 0, 8 |" in summary


def test_a_code_or_config_difference_is_said(pair):
    expected, run = pair
    record = json.loads((expected / MANIFEST).read_text())
    lines = verify_mod.provenance_lines({**record, "code_sha256": "0" * 64, "config_sha256": "1" * 64}, run, REPO)
    assert any(line.startswith("code: DIFFERS") for line in lines)
    assert any(line.startswith("config: DIFFERS") for line in lines)


def test_a_bad_tolerance_file_is_named(tmp_path):
    path = tmp_path / "tolerances.json"
    path.write_text(json.dumps({"rtol": "tight"}))
    with pytest.raises(SystemExit, match="tolerances.json: needs numeric 'rtol' and 'atol'"):
        load_tolerance(path)


def test_missing_expected_results_or_run_are_named(pair, tmp_path):
    expected, run = pair
    with pytest.raises(SystemExit, match="no expected results here .*shipped: .*smoke"):
        verify_mod.main(["--run", str(run), "--expected", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="no run here .*run `make smoke` first"):
        verify_mod.main(["--name", "smoke", "--run", str(tmp_path / "empty"), "--expected", str(expected)])


def on_other_arithmetic(run: Path, expected: Path) -> None:
    """Give the run a provenance record from another CPU (the expected results' config and torch)."""
    record = json.loads((expected / MANIFEST).read_text())
    env = {"cpu": "Another CPU", "package torch": record["machine"]["torch"]}
    prov = {"commit": "x", "config_sha256": record["config_sha256"], "configfiles": record["configfiles"], "environment": env}
    (run / "results/paper").mkdir(parents=True, exist_ok=True)
    (run / "results/paper/provenance.json").write_text(json.dumps(prov))


def test_on_other_arithmetic_sensitive_numbers_may_move_but_verdicts_may_not(pair):
    expected, run = pair
    sensitive = verify_mod.Sensitive(families=frozenset({"shen_pooled"}))

    def move_and_flip(rows):
        pooled = next(r for r in rows if r["family"] == "shen_pooled")
        pooled["effect"] = repr(float(pooled["effect"]) + 0.05)
        flipped = next(r for r in rows if r["verdict"] == "reproduced" and r["family"] != "shen_pooled")
        flipped["verdict"] = "inconclusive"
        return flipped

    flipped = edit_claims(run, move_and_flip)
    on_other_arithmetic(run, expected)
    report = verify(run, expected, load_tolerance(), sensitive=sensitive)
    assert any(line.startswith("arithmetic: DIFFERS") for line in report.header)
    assert [n for n in report.notes if n.startswith("claim shen_pooled") and "moved in effect" in n]
    assert report.failures == [f for f in report.failures if f.startswith(f"claim {flipped['family']}")]
    assert any("verdict differs" in f for f in report.failures)
    # on the expected results' own arithmetic the same move fails
    (run / "results/paper/provenance.json").unlink()
    assert any(f.startswith("claim shen_pooled") for f in verify(run, expected, load_tolerance(), sensitive=sensitive).failures)


def test_a_run_in_another_directory_has_the_same_config_files(pair):
    """The resolved config holds the checkout's absolute data path: its hash differs between directories,
    the config files' bytes do not."""
    expected, run = pair
    record = json.loads((expected / MANIFEST).read_text())
    prov = {"config_sha256": "2" * 64, "configfiles": record["configfiles"]}
    line = verify_mod.config_line(record, prov, REPO)
    assert line.startswith("config: the same config files as the expected results'") and "absolute data path" in line
    assert verify_mod.config_line(record, {**prov, "configfiles": ["decisive.yaml", "config.yaml"]}, REPO).startswith(
        "config: DIFFERS")


def test_a_fragile_familys_verdict_may_change_on_other_arithmetic_only(pair):
    """shen_permuted's smoke verdict changed under 2 threads and AVX2 on the reference CPU (measured): on
    another CPU its change is listed, not failed; on the reference arithmetic it fails like any other."""
    expected, run = pair
    sensitive = verify_mod.Sensitive(families=frozenset({"shen_permuted"}), fragile=frozenset({"shen_permuted"}))

    def flip(rows):
        row = next(r for r in rows if r["family"] == "shen_permuted")
        row["verdict"] = "inconclusive" if row["verdict"] != "inconclusive" else "reproduced"
        return row

    edit_claims(run, flip)
    on_other_arithmetic(run, expected)
    report = verify(run, expected, load_tolerance(), sensitive=sensitive)
    assert report.passed, report.failures
    assert any(n.startswith("claim shen_permuted") and "a fragile verdict" in n for n in report.notes)
    (run / "results/paper/provenance.json").unlink()
    failures = verify(run, expected, load_tolerance(), sensitive=sensitive).failures
    assert any(f.startswith("claim shen_permuted") and "verdict differs (fragile" in f for f in failures)

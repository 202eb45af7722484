"""The tolerance measurement: movements, the tolerance it sets, and the arithmetic switches on a real forward."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iclgd.tools import tolerance
from iclgd.tools.compare_runs import Tolerance, compare_runs, compare_value
from iclgd.tools.verify import load_tolerance

MACROS = "paper/generated/macros.json"


def test_movements_split_relative_and_tiny_and_skip_rounded_macros():
    values = [compare_value("a.csv", "x", "2.0", "2.000002", Tolerance()),          # rel 1e-6
              compare_value("a.csv", "y", "1e-16", "3e-16", Tolerance()),            # tiny: abs 2e-16
              compare_value(MACROS, "Acc", "41.7", "41.8", Tolerance()),             # rounding flip: left out
              compare_value("a.csv", "v", "reproduced", "reproduced", Tolerance())]
    rel, small = tolerance.movements(values)
    assert rel == pytest.approx(1e-6) and small == pytest.approx(2e-16)


def test_tolerance_is_safety_times_the_largest_move_with_floors():
    tol = tolerance.tolerance_from([{"max_rel": 1e-6, "max_abs_tiny": 0.0}, {"max_rel": 3e-6, "max_abs_tiny": 2e-16}])
    assert tol.rtol == pytest.approx(3e-5) and tol.atol == tolerance.ATOL_FLOOR
    still = tolerance.tolerance_from([{"max_rel": 0.0, "max_abs_tiny": 0.0}])
    assert (still.rtol, still.atol) == (tolerance.RTOL_FLOOR, tolerance.ATOL_FLOOR)


def test_describe_counts_identical_files_moves_and_verdict_changes(tmp_path):
    base, other = tmp_path / "base", tmp_path / "other"
    for root, acc, verdict in ((base, "0.5", "reproduced"), (other, "0.5000001", "inconclusive")):
        (root / "results/stats").mkdir(parents=True)
        (root / "results/stats/claims.csv").write_text(f"family,verdict\nx,{verdict}\n")
        (root / "results/stats/acc.csv").write_text(f"acc\n{acc}\n")
        (root / "results/stats/same.csv").write_text("n\n3\n")
    values, missing = compare_runs(base, other, Tolerance())
    found = tolerance.describe(base, other, values, missing)
    assert (found["files"], found["byte_identical"], found["moved_values"]) == (3, 1, 1)
    assert found["max_rel"] == pytest.approx(2e-7)        # acc moved by rounding
    assert found["verdicts_changed"] == ["results/stats/claims.csv row 0: verdict: 'reproduced' -> 'inconclusive'"]
    assert (found["sensitive_files"], found["sensitive_families"]) == ([], ["x"])


def test_a_move_beyond_rounding_marks_its_output_sensitive_and_leaves_the_tolerance_alone(tmp_path):
    base, other = tmp_path / "base", tmp_path / "other"
    for root, ft, icl in ((base, "0.625", "0.7"), (other, "0.5", "0.70000003")):
        (root / "results/metrics").mkdir(parents=True)
        (root / "results/metrics/finetune_accuracy.csv").write_text(f"acc\n{ft}\n")   # an epoch went the other way
        (root / "results/metrics/icl_accuracy.csv").write_text(f"acc\n{icl}\n")       # rounding
    values, missing = compare_runs(base, other, Tolerance())
    found = tolerance.describe(base, other, values, missing)
    assert found["sensitive_files"] == ["results/metrics/finetune_accuracy.csv"] and found["beyond_rounding"] == 1
    assert found["max_rel"] == pytest.approx(0.03e-6 / 0.7)
    rec = tolerance.record(base, [found])
    assert rec["rtol"] == pytest.approx(tolerance.SAFETY * 0.03e-6 / 0.7)
    assert rec["sensitive_files"] == ["results/metrics/finetune_accuracy.csv"]


SCORE = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[2]))
torch.use_deterministic_algorithms(sys.argv[3] == "1")
from iclgd.core import forward, models
model, tok = models.load_model(sys.argv[1], "cpu", "float32")
labels = forward.label_token_ids(tok, ["positive", "negative"])
prompts = ["Review: a gem\\nSentiment: positive\\nReview: dull\\nSentiment: negative\\nReview: " + w + "\\nSentiment:"
           for w in ("great fun", "a mess", "moving and wise", "clumsy")]
print(json.dumps([float(x) for p in prompts for x in forward.score_full(model, tok(p).input_ids, labels)["label_logprobs"][0]]))
"""


def score(tiny_dir: Path, threads: int, deterministic: bool, generic: bool = False) -> list[str]:
    env = dict(os.environ) | ({"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"} if generic else {})
    out = subprocess.run([sys.executable, "-c", SCORE, str(tiny_dir), str(threads), str(int(deterministic))],
                         capture_output=True, text=True, env=env, check=True)
    return [repr(x) for x in json.loads(out.stdout.splitlines()[-1])]


@pytest.mark.slow
def test_threads_deterministic_algorithms_and_generic_kernels_stay_within_the_shipped_tolerance(tiny_dir):
    """The label log-probs of one forward under 1 vs 2 threads, torch's deterministic-algorithm switch, and
    generic (non-vectorised) CPU kernels: each within expected/tolerances.json's rounding tolerance of the
    1-thread default (the scale: the largest magnitude among them, as for a CSV column)."""
    tol = load_tolerance()
    base = score(tiny_dir, 1, False)
    for variant in (score(tiny_dir, 2, False), score(tiny_dir, 2, True), score(tiny_dir, 1, True, generic=True)):
        scale = max(abs(float(x)) for x in base)
        values = [compare_value("scores.csv", str(i), e, o, tol, scale) for i, (e, o) in enumerate(zip(base, variant))]
        assert len(values) == 8 and all(v.ok for v in values), [v for v in values if not v.ok]

"""Calibration of the claims table's tests on simulated data with a known answer (`iclgd.core.calibration`).

The suite runs 400 data sets per check; its tolerances are the full calibration's band ([0.035, 0.065] at
1000 data sets, about +-2.2 SE) widened to this size (+-2.2 SE at 400 = +-0.024). `make calibrate` runs the
full 1000 and README quotes it. Two deliberately wrong tests must FAIL the same null check, which shows the
check can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from iclgd.core import calibration

N_SIM = 400
TOL = 2.2 * np.sqrt(0.05 * 0.95 / N_SIM)


@pytest.fixture(scope="module")
def null_rates() -> dict[str, float]:
    return calibration.null_rates(N_SIM, seed=1)


@pytest.mark.parametrize("name", [
    "crossed t, set-dominated", "crossed t, example-dominated", "crossed t, mixed", "crossed t, 0/1 data",
    "crossed t, pooled over 8 settings", "t over contexts (0/1-derived gaps)"])
def test_null_rejection_rate_matches_alpha(null_rates, name):
    assert abs(null_rates[name] - 0.05) <= TOL, (name, null_rates[name])


@pytest.mark.parametrize("name", ["Welch F over 8 settings", "exact McNemar, head vs constant"])
def test_conservative_tests_never_exceed_alpha(null_rates, name):
    """Welch's F (settings that share examples correlate positively) and the exact conditional McNemar
    (discrete) may reject less often than alpha, never more."""
    assert null_rates[name] <= 0.05 + TOL, (name, null_rates[name])


def test_the_null_check_fails_a_test_that_drops_the_example_level(null_rates):
    assert null_rates["WRONG: t over set means, example-dominated"] > 0.05 + TOL


def test_planner_predicts_the_simulated_power():
    table = calibration.power_checks(N_SIM, seed=2)
    for row in table.itertuples():
        assert abs(row.simulated - row.predicted) <= 0.05 + TOL / 2, row


def test_equivalence_rarely_calls_a_true_reference_effect_absent():
    for name, value in calibration.tost_at_reference(N_SIM, seed=3).items():
        assert value <= 0.05 + TOL, (name, value)

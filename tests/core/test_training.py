"""run_status on hand-built loss sequences: divergence needs a blow-up or a persistent rise, convergence an update."""

from __future__ import annotations

import pytest

from iclgd.core import training

TARGET, BLOWUP, PATIENCE = 0.1, 3.0, 3


def status(*losses: float, learned_last: bool = False, patience: int = PATIENCE) -> str | None:
    """Status after the hand-built mean losses (the first: the base model); only the last fit may be learned."""
    fits = [training.Fit(loss, False) for loss in losses[:-1]] + [training.Fit(losses[-1], learned_last)]
    return training.run_status(fits, TARGET, BLOWUP, patience)


def test_one_epoch_above_the_start_is_not_yet_diverged():
    assert status(2.0, 2.5) is None
    assert status(2.0, 2.5, 2.4) is None


def test_a_rise_that_persists_for_patience_epochs_is_diverged():
    assert status(2.0, 2.1, 2.2, 2.3) == "diverged"  # three epochs in a row above the start
    assert status(2.0, 2.1, 2.2, 2.3, patience=4) is None
    assert status(2.0, 2.5, patience=1) == "diverged"  # patience 1: the old rule, the first rise


def test_a_dip_back_below_the_start_resets_the_count():
    assert status(2.0, 2.1, 2.2, 1.9, 2.1, 2.2) is None
    assert status(2.0, 2.1, 2.2, 1.9, 2.1, 2.2, 2.05) == "diverged"
    assert status(2.0, 2.0, 2.0, 2.0) is None  # equal to the start is not above it


def test_a_blow_up_diverges_at_once():
    assert status(2.0, 6.5) == "diverged"  # above 3 x the start after one epoch
    assert status(2.0, 5.9) is None  # a large first rise below the blow-up factor waits for patience
    assert status(2.0, 1.0, 6.1) == "diverged"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_diverges_at_once(bad):
    assert status(2.0, bad) == "diverged"
    assert status(bad) == "diverged"


def test_convergence_needs_at_least_one_epoch_of_updates():
    assert status(0.01, learned_last=True) is None  # the base model already fits: not a fine-tuned model
    assert status(0.01, 0.01, learned_last=True) == "converged"
    assert status(2.0, 0.05, learned_last=True) == "converged"


def test_convergence_needs_every_label_learned_and_the_loss_below_target():
    assert status(2.0, 0.05, learned_last=False) is None  # low loss, one label wrong
    assert status(2.0, 0.5, learned_last=True) is None  # learned, loss above target
    assert status(2.0, 2.5, 0.05, learned_last=True) == "converged"  # a brief rise does not stop a run

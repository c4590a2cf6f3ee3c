"""The Pt calibration: a class prior on the softmax, fitted on whole validation slices so that
precision and recall balance, and the validation figures it is chosen by."""

from __future__ import annotations

import numpy as np
import pytest

from stemtomo.core.labels import ALUMINA, BACKGROUND, IGNORE, PT
from stemtomo.learn import calibration as cal


def toy(pt_shift: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(1, 3, 40, 50) probabilities and labels of a slice with 5 % Pt whose Pt evidence overlaps
    the other classes'; `pt_shift` > 0 makes the network over-call Pt, < 0 under-call it."""
    rng = np.random.default_rng(seed)
    labels = rng.choice([BACKGROUND, ALUMINA, PT], size=(1, 40, 50), p=[0.55, 0.4, 0.05])
    logits = np.zeros((1, 3, 40, 50))
    logits[:, ALUMINA] = np.where(labels == ALUMINA, 3.0, -3.0)
    # Pt log-odds against the best other class: N(+2, 1.5) on Pt, N(-2, 1.5) elsewhere, shifted
    margin = np.where(labels == PT, 2.0, -2.0) + rng.normal(0, 1.5, labels.shape) + pt_shift
    logits[:, PT] = logits[:, :PT].max(axis=1) + margin
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = labels.astype(np.uint8)
    labels[0, :3] = IGNORE  # unannotated pixels never count
    return probs.astype(np.float32), labels


def pr(probs, labels, priors=None) -> tuple[float, float]:
    row = cal.figures(cal.decide(probs, priors), labels)
    return row["val_precision_pt"], row["val_recall_pt"]


@pytest.mark.parametrize("shift", [1.0, -3.0])
def test_calibration_balances_precision_and_recall_the_stated_way(shift):
    probs, labels = toy(shift)
    p0, r0 = pr(probs, labels)
    log_prior = cal.fit_pt_log_prior(*cal.pt_margins(probs, labels))
    priors = cal.priors_from_log(log_prior)
    p1, r1 = pr(probs, labels, priors)
    if shift > 0:  # over-segmented: the prior lowers Pt, precision rises, recall falls
        assert p0 < r0 - 0.1 and log_prior < 0 and priors[PT] < 1
        assert p1 > p0 and r1 < r0
    else:  # under-segmented: the reverse
        assert r0 < p0 - 0.1 and log_prior > 0 and priors[PT] > 1
        assert r1 > r0 and p1 < p0
    assert p1 == pytest.approx(r1, abs=0.01)  # as many pixels called Pt as are labelled Pt
    called = (cal.decide(probs, priors) == PT) & (labels != IGNORE)
    assert called.sum() == (labels == PT).sum()


def test_validation_record_holds_the_argmax_and_the_calibrated_figures():
    probs, labels = toy(1.0)
    row = cal.validate(probs, labels, calibrate=True)
    assert row["val_precision_pt"] < row["val_recall_pt"]
    assert row["val_cal_precision_pt"] == pytest.approx(row["val_cal_recall_pt"], abs=0.01)
    assert row["val_cal_dice_pt"] > row["val_dice_pt"]
    assert {"val_dice_background", "val_recall_alumina", "val_cal_dice_alumina"} <= set(row)
    assert "val_pt_log_prior" not in cal.validate(probs, labels, calibrate=False)


def test_slices_without_pt_leave_the_decision_alone():
    probs, labels = toy(0.0)
    labels[labels == PT] = ALUMINA
    assert cal.fit_pt_log_prior(*cal.pt_margins(probs, labels)) == 0.0
    assert cal.priors_from_log(0.0) == [1.0, 1.0, 1.0]

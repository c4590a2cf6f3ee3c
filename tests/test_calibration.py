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


def test_unlabelled_pixels_never_move_the_validation_or_the_prior():
    """Whole-slice validation scores the annotated pixels only: whatever the network says on
    unannotated ones (here: Pt everywhere) changes no figure and not the fitted prior."""
    probs, labels = toy(1.0)
    labels[0, 20:, :25] = IGNORE  # a quarter of the slice left unannotated
    row = cal.validate(probs, labels, calibrate=True)
    other = probs.copy()
    other[0, :, 20:, :25] = np.array([0.0, 0.0, 1.0])[:, None, None]
    assert cal.validate(other, labels, calibrate=True) == row
    # and the same pixels, annotated, do count
    assert cal.validate(other, toy(1.0)[1], calibrate=True)["val_precision_pt"] \
        < cal.validate(probs, toy(1.0)[1], calibrate=True)["val_precision_pt"]


def test_training_validates_on_the_annotated_pixels_of_whole_slices(monkeypatch, tmp_path):
    """Through train(): validation slices that differ only where they are unannotated give the
    same history, and the slices are predicted whole (not cut into patches)."""
    torch = pytest.importorskip("torch")
    from conftest import stage
    from stemtomo.learn import training
    from stemtomo.learn.settings import TrainSettings

    seen = []

    class Bright(torch.nn.Module):
        multiple = 4

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            v = x[:, 0]
            return torch.stack([0.5 - v, 0 * v, (v - 0.8) * 10], dim=1) + self.w

    monkeypatch.setattr(training, "build_model", lambda **config: Bright())
    rng = np.random.default_rng(0)
    images = rng.random((2, 1, 20, 28)).astype(np.float32)
    labels = np.where(images[:, 0] > 0.9, PT, np.where(images[:, 0] > 0.5, ALUMINA, BACKGROUND))
    labels = labels.astype(np.uint8)
    labels[:, :, 14:] = IGNORE
    changed = images.copy()
    changed[:, :, :, 14:] = rng.random((2, 1, 20, 14))  # other content where nobody annotated
    settings = stage(TrainSettings, base=4, depth=2, epochs=2, batch_size=4, device="cpu")
    patches = {"images": images[:, :, :8, :8].copy(), "labels": labels[:, :8, :8].copy()}
    runs = [training.train("unet", patches, {"images": imgs, "labels": labels}, settings,
                           str(tmp_path / f"{i}.pt")) for i, imgs in enumerate((images, changed))]
    keys = [k for k in runs[0].history[0] if k.startswith("val_")]
    for a, b in zip(runs[0].history, runs[1].history, strict=True):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert (20, 28) in seen  # whole slices (padded to the model's multiple: 28 is one)


def over_calling_net(tmp_path):
    """A tiny network that over-calls Pt, calibrated on slices as training does, saved and
    loaded through model.pt: (the network, the volume, its annotation, the argmax's Pt count).
    The annotation holds Pt on a fifth of the pixels the argmax calls Pt (its most confident)."""
    import torch

    from conftest import stage
    from stemtomo.core.intensity import Normalisation
    from stemtomo.learn.modelfile import load_model, save_model
    from stemtomo.learn.models import build_model
    from stemtomo.learn.segmentation import predict_slices
    from stemtomo.learn.settings import TrainSettings
    from stemtomo.learn.training import TrainResult

    torch.manual_seed(0)
    config = {"name": "unet", "in_channels": 1, "classes": 3, "base": 4, "depth": 2}
    model = build_model(**config).eval()
    volume = np.random.default_rng(1).random((3, 24, 32)).astype(np.float32)
    scale = Normalisation.of(volume)
    images = torch.from_numpy(scale.apply(volume))[:, None]

    def predict():
        return predict_slices(model, images, model.multiple, 4, torch.device("cpu")).numpy()

    margins, _ = cal.pt_margins(predict(), np.zeros(volume.shape, np.uint8))
    with torch.no_grad():  # a Pt logit bias that calls Pt on 30 % of the pixels: over-calling
        model.head.bias[PT] -= float(np.quantile(margins, 0.7))
    probs = predict()
    argmax_pt = int((cal.decide(probs) == PT).sum())
    margins, _ = cal.pt_margins(probs, np.zeros(volume.shape, np.uint8))
    labels = np.zeros(volume.shape, np.uint8)
    labels.reshape(-1)[np.argsort(-margins)[:argmax_pt // 5]] = PT
    log_prior = cal.fit_pt_log_prior(*cal.pt_margins(probs, labels))
    assert log_prior < 0
    result = TrainResult(model.state_dict(), [{"epoch": 1, "val_pt_log_prior": log_prior}], 1,
                         config, cal.priors_from_log(log_prior))
    patches = {"patch_size": 16, "channels": 1, "normalisation": scale.as_record()}
    save_model(str(tmp_path / "m.pt"), result, patches, stage(TrainSettings), {})
    net = load_model(str(tmp_path / "m.pt"), torch.device("cpu"))
    assert net.priors == pytest.approx(cal.priors_from_log(log_prior))
    return net, volume, labels, argmax_pt


def test_the_stored_calibration_reaches_segmentation_and_the_ensemble(tmp_path):
    """model.pt keeps the prior, and segmentation through model.pt then calls as many Pt pixels
    on the calibration slices as are annotated (fewer than the argmax). The ensemble of two
    networks segments the mean of their calibrated probabilities."""
    torch = pytest.importorskip("torch")
    import dataclasses

    from conftest import stage
    from stemtomo.learn.modelfile import segment_with
    from stemtomo.learn.settings import SegmentSettings

    net, volume, _, argmax_pt = over_calling_net(tmp_path)
    seg = stage(SegmentSettings, probabilities=True)
    calibrated, p_cal = segment_with([net], volume, torch.device("cpu"), seg)
    plain, p_plain = segment_with([dataclasses.replace(net, priors=None)], volume,
                                  torch.device("cpu"), seg)
    assert (plain == PT).sum() == pytest.approx(argmax_pt, abs=argmax_pt * 0.01)
    assert (calibrated == PT).sum() == pytest.approx(argmax_pt // 5, abs=argmax_pt * 0.01)
    # the ensemble: mean of the calibrated and the uncalibrated network's probabilities
    both, p_both = segment_with([net, dataclasses.replace(net, priors=None)], volume,
                                torch.device("cpu"), seg)
    mean = (p_cal.astype(np.float32) + p_plain.astype(np.float32)) / 2
    np.testing.assert_allclose(p_both.astype(np.float32), mean, atol=2e-3)
    clear = np.diff(np.sort(mean, axis=0)[-2:], axis=0)[0] > 1e-2
    assert (both[clear] == mean.argmax(axis=0)[clear]).all()
    assert (calibrated == PT).sum() < (both == PT).sum() < (plain == PT).sum()


def test_the_ensemble_is_calibrated_on_its_own_mean(tmp_path):
    """Two calibrated networks whose mean over-calls Pt (one calibrated, one with a prior of 1):
    calibrate_ensemble fits a prior on the validation slices that lowers Pt so that the
    ensemble's segmentation of those slices calls as many Pt pixels as are annotated, with
    precision = recall there; with an uncalibrated network the ensemble stays an argmax."""
    torch = pytest.importorskip("torch")
    import dataclasses

    from conftest import stage
    from stemtomo.learn.modelfile import calibrate_ensemble, segment_with
    from stemtomo.learn.settings import SegmentSettings

    net, volume, labels, argmax_pt = over_calling_net(tmp_path)
    loose = dataclasses.replace(net, priors=[1.0, 1.0, 1.0])  # "calibrated" to the argmax
    images = net.normalisations[0].apply(volume)[:, None]
    cpu, seg = torch.device("cpu"), stage(SegmentSettings)
    fit = calibrate_ensemble([net, loose], images, labels, cpu)
    row = fit["validation"]
    assert fit["priors"][PT] < 1 and fit["priors"][:PT] == [1.0, 1.0]
    assert row["val_precision_pt"] < row["val_recall_pt"] - 0.1  # the mean over-calls
    assert row["val_cal_precision_pt"] == pytest.approx(row["val_cal_recall_pt"], abs=0.01)
    mean, _ = segment_with([net, loose], volume, cpu, seg)
    own, _ = segment_with([net, loose], volume, cpu, seg, ensemble_prior=fit["priors"])
    assert (mean == PT).sum() > 1.2 * (labels == PT).sum()
    assert (own == PT).sum() == pytest.approx((labels == PT).sum(), abs=argmax_pt * 0.01)
    off = calibrate_ensemble([net, dataclasses.replace(net, priors=None)], images, labels, cpu)
    assert off["priors"] is None and "val_cal_dice_pt" not in off["validation"]
    with pytest.raises(ValueError, match="needs an ensemble"):
        segment_with([net], volume, cpu, seg, ensemble_prior=fit["priors"])

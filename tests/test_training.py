"""Training: resume after a kill equals an uninterrupted run, label-safe augmentation, metrics."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import stage  # noqa: E402
from stemtomo.core.overlap import dice_per_class  # noqa: E402
from stemtomo.learn.settings import TrainSettings  # noqa: E402
from stemtomo.learn.training import augment, train  # noqa: E402

torch.set_num_threads(2)


def settings(**overrides) -> TrainSettings:
    # min_class_dice 0: these few-epoch toy networks need not learn every class (the collapse
    # tests below set it)
    base = {"base": 4, "depth": 2, "epochs": 4, "batch_size": 8, "device": "cpu", "patience": 50,
            "min_class_dice": 0.0}
    base.update(overrides)
    return stage(TrainSettings, **base)


def toy_set(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    images = rng.random((n, 1, 16, 16)).astype(np.float32)
    labels = (images[:, 0] > 0.5).astype(np.uint8) + (images[:, 0] > 0.9).astype(np.uint8)
    labels[:, :2] = 255  # partially unlabelled, as annotations are
    return {"images": images, "labels": labels}


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path):
    tr, va = toy_set(32, 0), toy_set(8, 1)
    whole = train("attention_res_unet", tr, va, settings(), str(tmp_path / "a.pt"))
    first = train("attention_res_unet", tr, va, settings(), str(tmp_path / "b.pt"), stop_after=2)
    assert len(first.history) == 2
    resumed = train("attention_res_unet", tr, va, settings(), str(tmp_path / "b.pt"))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    for key, value in whole.state_dict.items():
        assert torch.equal(value, resumed.state_dict[key]), key


def test_a_checkpoint_from_other_settings_is_not_resumed(tmp_path):
    tr, va = toy_set(32, 0), toy_set(8, 1)
    train("unet", tr, va, settings(), str(tmp_path / "c.pt"), stop_after=2)
    other = train("unet", tr, va, settings(lr=0.01, epochs=3), str(tmp_path / "c.pt"))
    assert [h["epoch"] for h in other.history] == [1, 2, 3]


def test_a_checkpoint_is_only_resumed_with_the_same_validation_set(tmp_path):
    tr, va = toy_set(32, 0), toy_set(8, 1)
    train("unet", tr, va, settings(), str(tmp_path / "v.pt"), stop_after=2)
    other = train("unet", tr, toy_set(8, 2), settings(epochs=3), str(tmp_path / "v.pt"))
    assert [h["epoch"] for h in other.history] == [1, 2, 3]


def test_training_learns_and_keeps_the_best_pt_epoch(tmp_path):
    tr, va = toy_set(64, 0), toy_set(16, 1)
    res = train("unet", tr, va, settings(epochs=8, lr=0.01, selection="pt"), str(tmp_path / "d.pt"))
    dice_pt = [h["val_cal_dice_pt"] for h in res.history]  # after the Pt calibration
    assert res.best_epoch == int(np.argmax(dice_pt)) + 1
    best = res.history[res.best_epoch - 1]
    assert res.priors == pytest.approx([1.0, 1.0, np.exp(best["val_pt_log_prior"])])
    assert {"val_precision_pt", "val_recall_pt", "val_precision_alumina"} <= set(best)
    for key in ("val_recall_alumina", "val_cal_precision_pt", "val_cal_recall_pt"):
        assert 0 <= best[key] <= 1, key
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert max(h["val_dice_alumina"] for h in res.history) > 0.7  # all-alumina scores 0.57


class Generous(torch.nn.Module):
    """A stand-in network whose Pt threshold on the intensity falls by 0.02 with every training
    epoch (0.80, 0.78, ...): training that drifts towards calling more pixels Pt."""

    multiple = 4

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))  # something for the optimiser to hold
        self.register_buffer("epochs", torch.zeros(()))

    def train(self, mode: bool = True):
        if mode:  # training.train() puts the model in training mode once per epoch
            self.epochs += 1
        return super().train(mode)

    def threshold(self) -> float:
        return 0.82 - 0.02 * float(self.epochs)

    def alumina_threshold(self) -> float:
        return 0.35

    def alumina(self, v):
        return (v - self.alumina_threshold()) * 50

    def forward(self, x):
        v = x[:, 0]
        alumina = self.alumina(v)
        pt = (v - self.threshold()) * 500
        return torch.stack([torch.zeros_like(v), alumina, torch.maximum(alumina, pt) + (pt > 0)],
                           dim=1) + self.w


def test_a_run_from_earlier_weights_fine_tunes_at_a_fraction_of_the_rate(tmp_path):
    """A correction round (init_from: previous) restarted at full rate undid what the network
    had learnt (bench/annotation_paths.py): its schedule now runs at lr × finetune_lr_fraction."""
    tr, va = toy_set(64, 0), toy_set(16, 1)
    first = train("unet", tr, va, settings(epochs=8, lr=0.01), str(tmp_path / "a.pt"))
    scratch = train("unet", tr, va, settings(epochs=3, lr=0.01), str(tmp_path / "b.pt"))
    tuned = train("unet", tr, va, settings(epochs=3, lr=0.01, finetune_lr_fraction=0.1),
                  str(tmp_path / "c.pt"), init_state=first.state_dict)
    assert [h["lr"] for h in tuned.history] == pytest.approx([0.1 * h["lr"] for h in scratch.history])
    best = first.history[first.best_epoch - 1]["val_cal_dice_pt"]  # the weights it kept
    assert tuned.history[0]["val_cal_dice_pt"] > best - 0.05  # it starts where the first run ended


def overlapping_classes(n: int, pt_share: float, seed: int) -> dict:
    """Pixels whose intensity depends on the class but overlaps: background U(0, 0.3), alumina
    U(0.4, 0.8), Pt U(0.7, 1.0), Pt making up `pt_share` of them."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=(n, 16, 16), p=[0.6 - pt_share / 2, 0.4 - pt_share / 2,
                                                 pt_share]).astype(np.uint8)
    lo, hi = np.array([0.0, 0.4, 0.7])[labels], np.array([0.3, 0.8, 1.0])[labels]
    images = (lo + (hi - lo) * rng.random(labels.shape)).astype(np.float32)[:, None]
    return {"images": images, "labels": labels}


def test_validation_on_whole_slices_picks_the_epoch_pt_enriched_patches_would_not(monkeypatch,
                                                                                  tmp_path):
    """Pt is rare in whole slices and common in Pt-centred patches; where the classes overlap in
    intensity, calling more pixels Pt pays on the patches but not on the slices. Validation on
    the slices keeps the first epoch's threshold (0.80: no alumina above it); the patches' Pt
    share would pick a later, over-segmenting epoch."""
    from stemtomo.learn import training

    monkeypatch.setattr(training, "build_model", lambda **config: Generous())
    slices, patches = overlapping_classes(8, 0.01, 1), overlapping_classes(8, 0.3, 2)
    res = train("unet", overlapping_classes(16, 0.1, 0), slices,
                settings(epochs=6, calibrate_pt=False, selection="pt"), str(tmp_path / "g.pt"))
    whole = [h["val_dice_pt"] for h in res.history]
    assert res.best_epoch == 1 == int(np.argmax(whole)) + 1
    model = Generous()
    on_patches = []
    for epoch in range(1, 7):
        model.epochs.fill_(epoch)
        pred = model(torch.from_numpy(patches["images"])).argmax(dim=1).numpy()
        on_patches.append(dice_per_class(pred, patches["labels"])[2])
    assert int(np.argmax(on_patches)) + 1 >= 3  # the patches reward over-segmenting Pt
    assert res.history[-1]["val_precision_pt"] < res.history[0]["val_precision_pt"]
    assert res.history[-1]["val_recall_pt"] > res.history[0]["val_recall_pt"]


def test_early_stopping_waits_for_the_schedule_to_decay(monkeypatch, tmp_path):
    """No gain after the first epoch, patience 1: the run still goes on until the cosine rate is
    down to stop_lr_fraction (10 epochs: 0.0955 of the start after 8), then stops."""
    from stemtomo.learn import training

    class Frozen(Generous):
        def threshold(self) -> float:
            return 0.8

    monkeypatch.setattr(training, "build_model", lambda **config: Frozen())
    tr, va = overlapping_classes(16, 0.1, 0), overlapping_classes(4, 0.01, 1)
    res = train("unet", tr, va, settings(epochs=10, patience=1), str(tmp_path / "s.pt"))
    assert len(res.history) == 8 and res.best_epoch == 1
    assert res.history[-1]["lr"] == pytest.approx(0.002 * 0.5 * (1 + np.cos(np.pi * 7 / 10)))
    never = train("unet", tr, va, settings(epochs=10, patience=1, stop_lr_fraction=0.0),
                  str(tmp_path / "n.pt"))
    assert len(never.history) == 10


class LateAlumina(Generous):
    """Generous, but γ-alumina is never called before epoch `start` (a network stuck on the
    background/Pt solution, alumina called background, as one run on the hard preset stayed)."""

    start = 3

    def alumina(self, v):
        return super().alumina(v) if float(self.epochs) >= self.start else torch.full_like(v, -100)


def test_an_epoch_that_misses_an_annotated_class_is_never_the_best(monkeypatch, tmp_path):
    """Pt Dice is highest in epoch 1, but alumina is missing until epoch 3: the best epoch is the
    best of those that segment every annotated class, unless train.min_class_dice is 0."""
    from stemtomo.learn import training

    monkeypatch.setattr(training, "build_model", lambda **config: LateAlumina())
    tr, va = overlapping_classes(16, 0.1, 0), overlapping_classes(8, 0.01, 1)
    res = train("unet", tr, va, settings(epochs=6, calibrate_pt=False, min_class_dice=0.05,
                                         selection="pt"), str(tmp_path / "l.pt"))
    pt = [h["val_dice_pt"] for h in res.history]
    assert [h["val_dice_alumina"] for h in res.history[:2]] == [0.0, 0.0]
    assert int(np.argmax(pt)) == 0  # what Pt alone would pick
    assert res.best_epoch == 3 + int(np.argmax(pt[2:]))
    assert res.history[res.best_epoch - 1]["val_dice_alumina"] > 0.5
    off = train("unet", tr, va, settings(epochs=6, calibrate_pt=False, selection="pt"),
                str(tmp_path / "o.pt"))
    assert off.best_epoch == 1


def test_a_network_that_never_segments_an_annotated_class_fails_instead_of_saving(monkeypatch,
                                                                                 tmp_path):
    from stemtomo.core.errors import StemtomoError
    from stemtomo.learn import training

    monkeypatch.setattr(LateAlumina, "start", 99)
    monkeypatch.setattr(training, "build_model", lambda **config: LateAlumina())
    tr, va = overlapping_classes(16, 0.1, 0), overlapping_classes(8, 0.01, 1)
    guarded = settings(epochs=4, min_class_dice=0.05)
    part = train("unet", tr, va, guarded, str(tmp_path / "c.pt"), stop_after=2)
    assert len(part.history) == 2  # unfinished: no verdict yet
    with pytest.raises(StemtomoError, match=r"alumina at most 0\.000 \(epoch 1\)") as err:
        train("unet", tr, va, guarded, str(tmp_path / "c.pt"))
    assert "in none of its 4 epochs" in str(err.value) and "train.seed" in str(err.value)
    assert "background at most" not in str(err.value) and "pt at most" not in str(err.value)
    # a class the validation slices do not annotate is not asked for
    unannotated = {**va, "labels": np.where(va["labels"] == 1, 255, va["labels"]).astype(np.uint8)}
    res = train("unet", tr, unannotated, guarded, str(tmp_path / "u.pt"))
    assert res.best_epoch >= 1


class Ripening(Generous):
    """Generous, and its γ-alumina threshold improves with every epoch (0.60, 0.55, ... down to
    the right 0.35): Pt is best early, alumina late."""

    def alumina_threshold(self) -> float:
        return max(0.35, 0.65 - 0.05 * float(self.epochs))


def test_foreground_selection_weighs_alumina_with_pt(monkeypatch, tmp_path):
    """The default (train.selection: foreground) keeps the epoch of best mean γ-alumina and Pt
    Dice, where Pt alone would keep an early epoch poor on alumina."""
    from stemtomo.learn import training

    monkeypatch.setattr(training, "build_model", lambda **config: Ripening())
    tr, va = overlapping_classes(16, 0.1, 0), overlapping_classes(8, 0.05, 1)
    by_pt = train("unet", tr, va, settings(epochs=8, calibrate_pt=False, selection="pt"),
                  str(tmp_path / "p.pt"))
    both = train("unet", tr, va, settings(epochs=8, calibrate_pt=False), str(tmp_path / "f.pt"))
    same = [[{k: v for k, v in h.items() if k != "patches_per_s"} for h in r.history]
            for r in (by_pt, both)]
    assert same[0] == same[1]  # the same run, only the choice differs
    pt = np.array([h["val_dice_pt"] for h in both.history])
    mean = (pt + [h["val_dice_alumina"] for h in both.history]) / 2
    assert by_pt.best_epoch == int(np.argmax(pt)) + 1
    assert both.best_epoch == int(np.argmax(mean)) + 1 > by_pt.best_epoch


def test_a_loss_that_becomes_nan_stops_training_with_the_fix(monkeypatch, tmp_path):
    from stemtomo.core.errors import StemtomoError
    from stemtomo.learn import training

    class Diverged(Generous):
        def forward(self, x):
            return super().forward(x) * float("nan")

    monkeypatch.setattr(training, "build_model", lambda **config: Diverged())
    tr, va = overlapping_classes(16, 0.1, 0), overlapping_classes(4, 0.01, 1)
    with pytest.raises(StemtomoError, match=r"(?s)loss became nan in epoch 1 .*fix: lower train.lr"):
        train("unet", tr, va, settings(), str(tmp_path / "n.pt"))


def test_augmentation_moves_labels_with_images():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (20, 16, 16)).astype(np.uint8)
    images = labels[:, None].astype(np.float32)
    a_img, a_lab = augment(torch.from_numpy(images), torch.from_numpy(labels), rng, jitter=0.0)
    a_img, a_lab = a_img.numpy(), a_lab.numpy()
    np.testing.assert_array_equal(a_img[:, 0].astype(np.uint8), a_lab)
    assert not np.array_equal(a_lab, labels)  # something was flipped or rotated
    assert sorted(np.unique(a_lab)) == [0, 1, 2]
    # every output patch is one of the 8 flips/rotations of its input
    for src, out in zip(labels, a_lab, strict=True):
        variants = [np.rot90(f, k) for f in (src, src[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(out, v) for v in variants)


def test_intensity_jitter_is_a_gain_and_offset_per_patch():
    rng = np.random.default_rng(1)
    images = torch.ones((6, 1, 8, 8))
    out, _ = augment(images, torch.zeros((6, 8, 8), dtype=torch.uint8), rng, jitter=0.2)
    per_patch = out.reshape(6, -1)
    assert torch.allclose(per_patch, per_patch[:, :1].expand_as(per_patch))  # uniform in a patch
    assert per_patch[:, 0].std() > 0.05  # and different between patches


def test_validation_dice_counts_only_labelled_pixels_and_handles_absent_classes():
    target = np.array([[0, 1, 1, 255]])
    pred = np.array([[0, 1, 0, 2]])
    d = dice_per_class(pred, target)
    assert d[0] == pytest.approx(2 / 3) and d[1] == pytest.approx(2 / 3)
    assert d[2] == 1.0  # Pt absent from truth and (labelled) prediction


def test_patch_size_must_fit_the_depth(tmp_path):
    tr = toy_set(8, 0)
    small = {"images": tr["images"][..., :12, :12], "labels": tr["labels"][..., :12, :12]}
    with pytest.raises(ValueError, match="multiple of 8"):
        train("unet", small, tr, settings(depth=3, epochs=1), str(tmp_path / "e.pt"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_training_on_the_gpu_learns_and_returns_host_weights(tmp_path):
    tr, va = toy_set(64, 0), toy_set(16, 1)
    res = train("attention_res_unet", tr, va, settings(epochs=8, lr=0.01, device="cuda"),
                str(tmp_path / "g.pt"))
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert max(h["val_dice_alumina"] for h in res.history) > 0.7  # all-alumina scores 0.57
    assert all(v.device.type == "cpu" for v in res.state_dict.values())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_training_saves_plain_weights(tmp_path):
    tr, va = toy_set(32, 0), toy_set(8, 1)
    res = train("unet", tr, va, settings(epochs=2, device="cuda", compile=True), str(tmp_path / "c.pt"))
    assert np.isfinite(res.history[-1]["loss"])
    assert not any(k.startswith("_orig_mod") for k in res.state_dict)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_training_resumes_after_a_kill(tmp_path):
    """The checkpoint's RNG state and best weights come back on the host wherever it trained."""
    tr, va = toy_set(32, 0), toy_set(8, 1)
    first = train("unet", tr, va, settings(device="cuda"), str(tmp_path / "k.pt"), stop_after=2)
    resumed = train("unet", tr, va, settings(device="cuda"), str(tmp_path / "k.pt"))
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[:2] == first.history
    assert all(v.device.type == "cpu" for v in resumed.state_dict.values())

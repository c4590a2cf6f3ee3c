"""Patch extraction: annotation, disjoint slabs, Pt oversampling, 2.5D context and bad labels."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import stage
from stemtomo.core.errors import InputError
from stemtomo.core.intensity import Normalisation
from stemtomo.core.labels import IGNORE, class_statistics
from stemtomo.learn.patches import check_labels, extract, sample, simulate_annotation, split_slices
from stemtomo.learn.settings import PatchSettings


def settings(**overrides) -> PatchSettings:
    return stage(PatchSettings, **overrides)


@pytest.fixture(scope="module")
def toy():
    """A 40-slice volume: alumina block with small Pt cubes; intensity encodes z for checks."""
    rng = np.random.default_rng(0)
    labels = np.zeros((40, 48, 48), np.uint8)
    labels[8:32, 10:38, 10:38] = 1
    for _ in range(30):
        z, y, x = rng.integers(8, 32), rng.integers(10, 36), rng.integers(10, 36)
        labels[z, y:y + 2, x:x + 2] = 2
    volume = labels.astype(np.float32) * 10 + np.arange(40, dtype=np.float32)[:, None, None] * 0.01
    return volume, labels


def test_annotation_keeps_evenly_spaced_slices_through_the_object(toy):
    _, labels = toy
    ann = simulate_annotation(labels, 6)
    kept = np.flatnonzero((ann != IGNORE).any(axis=(1, 2)))
    assert len(kept) == 6 and kept[0] == 8 and kept[-1] == 31
    np.testing.assert_array_equal(ann[kept], labels[kept])
    assert np.all(ann[np.setdiff1d(np.arange(40), kept)] == IGNORE)


def disc_scene() -> tuple[np.ndarray, np.ndarray]:
    """A support with Pt particles on its edge, alternately small (radius 1.5 px, 19 voxels) and
    big (4 px); the labels and the small particles' mask."""
    labels = np.zeros((9, 64, 64), np.uint8)
    labels[:, 32:, :] = 1
    zz, yy, xx = np.indices(labels.shape)
    small = np.zeros(labels.shape, bool)
    for i, x in enumerate(range(6, 64, 10)):
        ball = (zz - 4) ** 2 + (yy - 31) ** 2 + (xx - x) ** 2 <= (1.5 if i % 2 else 4.0) ** 2
        labels[ball] = 2
        small |= ball & bool(i % 2)
    return labels, small


def test_annotation_noise_moves_boundaries_by_the_stated_amount_and_keeps_objects_in_place():
    from stemtomo.learn.settings import AnnotationNoise

    jitter = AnnotationNoise(1.0, 4.0, 0.0, 0.0)
    edge = np.zeros((9, 64, 64), np.uint8)
    edge[:, 32:] = 1  # a straight support edge
    noisy = simulate_annotation(edge, 9, jitter, 1.0, seed=3)
    # pixels changed per unit of edge: E[round(|d|)] = 0.76 px for d ~ N(0, 1 px)
    assert 0.55 < (noisy != edge).sum() / (9 * 64) < 1.0
    assert (noisy[:, :26] == 0).all() and (noisy[:, 38:] == 1).all()  # only near the edge
    labels, small = disc_scene()
    noisy = simulate_annotation(labels, 9, jitter, 1.0, seed=3)
    zs, ys, xs = np.nonzero((noisy == 2) & (np.abs(np.arange(64) - 6) < 7)[None, None, :])
    assert abs(ys.mean() - 31) < 1 and abs(xs.mean() - 6) < 1  # a particle stays put
    assert np.array_equal(noisy, simulate_annotation(labels, 9, jitter, 1.0, seed=3))  # seeded
    assert np.array_equal(simulate_annotation(labels, 9, AnnotationNoise(0, 4, 0, 0)), labels)


def test_annotation_jitter_keeps_small_particles_area_on_average():
    """A person's outline errors are unbiased in area; perturbing each class's signed distance
    (the first model) drew 2-6 px particles 12-25 % larger, which biased Pt calibration."""
    from stemtomo.learn.settings import AnnotationNoise

    rng = np.random.default_rng(0)
    labels = np.zeros((12, 96, 96), np.uint8)
    labels[:, 48:] = 1
    yy, xx = np.indices(labels.shape[1:])
    for z in range(12):  # 80 particles of radius 1-3 px per slice, on the support and in vacuum
        for y, x, r in zip(rng.uniform(4, 92, 80), rng.uniform(4, 92, 80), rng.uniform(1, 3, 80),
                           strict=True):
            labels[z][(yy - y) ** 2 + (xx - x) ** 2 <= r**2] = 2
    for rms in (0.5, 1.0):
        noisy = simulate_annotation(labels, 12, AnnotationNoise(rms, 4.0, 0.0, 0.0), 1.0, seed=1)
        assert (noisy != labels).mean() > 0.02 * rms  # it did move outlines
        assert abs((noisy == 2).sum() / (labels == 2).sum() - 1) < 0.04
        assert abs((noisy == 1).sum() / (labels == 1).sum() - 1) < 0.02


def test_a_person_misses_small_particles_only_and_labels_them_as_their_surroundings():
    from stemtomo.learn.settings import AnnotationNoise

    labels, small = disc_scene()  # 0.5 nm voxels: small ones 1.7 nm, big ones 4 nm across
    noisy = simulate_annotation(labels, 9, AnnotationNoise(0.0, 4.0, 2.0, 1.0), 0.5)
    assert (noisy[small] != 2).all() and ((noisy == 2) == ((labels == 2) & ~small)).all()
    # a missed particle on the support is drawn as support where it sits in it, else vacuum
    assert set(np.unique(noisy[small & (np.indices(labels.shape)[1] >= 32)])) == {1}
    assert set(np.unique(noisy[small & (np.indices(labels.shape)[1] < 31)])) == {0}
    none = simulate_annotation(labels, 9, AnnotationNoise(0.0, 4.0, 2.0, 0.0), 0.5)
    assert np.array_equal(none, labels)


def test_train_and_validation_slabs_are_disjoint_with_a_gap():
    train, val = split_slices(np.arange(0, 40, 3), val_fraction=0.25, gap=3)
    assert np.all(np.diff(val) == 3)  # one contiguous block of annotated slices
    assert set(train).isdisjoint(val)
    assert np.min(np.abs(train[:, None] - val[None, :])) > 3


def test_pt_oversampling_and_patch_content(toy):
    volume, labels = toy
    slices = np.arange(8, 32)
    ps = sample(volume, labels, slices, 3000, 16, 0.33, 0, np.random.default_rng(1))
    assert abs(ps.pt_centred.mean() - 0.33) < 0.03
    centre = ps.labels[:, 8, 8]
    assert np.all(centre[ps.pt_centred] == 2)
    assert set(ps.slices) <= set(slices)
    # The image channel is the patch's own slice (intensity encodes z).
    z_from_image = np.round((ps.images[:, 0] % 1).max(axis=(1, 2)) / 0.01)
    assert np.all(np.abs(z_from_image - ps.slices) < 0.5)
    # Uniform sampling alone would rarely hit Pt (~1 % of labelled pixels).
    uniform = sample(volume, labels, slices, 1000, 16, 0.0, 0, np.random.default_rng(2))
    assert (uniform.labels[:, 8, 8] == 2).mean() < 0.05


def test_two_and_a_half_d_context_channels(toy):
    volume, labels = toy
    ps = sample(volume, labels, np.array([8, 20]), 50, 16, 0.3, 2, np.random.default_rng(3))
    assert ps.images.shape == (50, 5, 16, 16)
    for img, z in zip(ps.images, ps.slices, strict=True):
        expected = np.clip(np.arange(z - 2, z + 3), 0, 39) * 0.01
        np.testing.assert_allclose((img % 1).max(axis=(1, 2)), expected, atol=1e-4)


def test_two_sources_become_channels_of_the_same_patches(toy):
    """denoise.input both: the reconstruction and its denoised form give the patches of either
    alone, stacked source after source (context channels each), each normalised on its own."""
    volume, labels = toy
    ann = simulate_annotation(labels, 10)
    other = (volume[:, ::-1] * 3.0 + 1.0).copy()
    s = settings(patch_size=16, train_patches=32, context=1)
    alone = [extract(v, ann, s) for v in (volume, other)]
    train, val, rec = extract([volume, other], ann, s)
    assert train.images.shape == (32, 6, 16, 16) and rec["channels"] == 6 and rec["sources"] == 2
    for i, (one_train, one_val, one_rec) in enumerate(alone):
        np.testing.assert_array_equal(train.centres, one_train.centres)
        np.testing.assert_array_equal(train.images[:, 3 * i:3 * i + 3], one_train.images)
        np.testing.assert_array_equal(val.images[:, 3 * i:3 * i + 3], one_val.images)
        assert rec["source_normalisations"][i] == one_rec["normalisation"]
    assert rec["normalisation"] == alone[0][2]["normalisation"]
    with pytest.raises(ValueError, match="of one shape"):
        extract([volume, other[:-1]], ann, s)


def test_extract_records_disjoint_slabs_and_statistics(toy):
    volume, labels = toy
    ann = simulate_annotation(labels, 10)
    train, val, rec = extract(volume, ann, settings(patch_size=16, train_patches=64, context=1))
    assert set(rec["train_slices"]).isdisjoint(rec["val_slices"])
    # no training patch's 2.5D context (±1 slice) reaches a validation patch's context
    gap = np.min(np.abs(np.subtract.outer(rec["train_slices"], rec["val_slices"])))
    assert gap > 2 * 1 + 1
    assert set(train.slices) <= set(rec["train_slices"])
    assert sum(rec["train"]["fractions"]) == pytest.approx(1.0, abs=1e-5)  # rounded to 6 places
    assert train.images.shape == (64, 3, 16, 16)
    assert rec["train"]["pt_centred"] > 0
    # validation: the whole annotated validation slices with their context, never patches
    assert list(val.slices) == rec["val_slices"] and rec["val"]["slices"] == len(val.slices)
    assert val.images.shape == (len(val.slices), 3, 48, 48) and not val.pt_centred.any()
    np.testing.assert_array_equal(val.labels, ann[val.slices])
    norm = Normalisation.of(volume).apply(volume)
    for img, z in zip(val.images, val.slices, strict=True):
        np.testing.assert_array_equal(img, norm[[z - 1, z, z + 1]])
    # the validation class fractions are the annotation's own (no Pt enrichment)
    assert rec["val"]["fractions"] == class_statistics(ann[val.slices])["fractions"]


def test_normalisation_maps_percentiles(toy):
    volume, _ = toy
    norm = Normalisation.of(volume).apply(volume)
    assert np.percentile(norm, 1) == pytest.approx(0, abs=1e-6)
    assert np.percentile(norm, 99.9) == pytest.approx(1, abs=1e-6)


def test_bad_labels_are_named(toy):
    volume, labels = toy
    with pytest.raises(InputError, match="lab.tif: labels have shape"):
        check_labels(volume, labels[:-1], "lab.tif")
    bad = labels.copy()
    bad[0, 0, 0] = 7
    with pytest.raises(InputError, match=r"label values \[7\]"):
        check_labels(volume, bad, "lab.tif")
    with pytest.raises(InputError, match="no labelled voxels"):
        check_labels(volume, np.full_like(labels, IGNORE), "lab.tif")
    one = np.full_like(labels, IGNORE)
    one[10] = labels[10]
    with pytest.raises(InputError, match="only 1 annotated slice"):
        extract(volume, one, settings(patch_size=16))
    with pytest.raises(InputError, match="patches.patch_size"):
        extract(volume, simulate_annotation(labels, 8), settings(patch_size=64))
    no_pt_in_val = simulate_annotation(labels, 8)
    _, val_z = split_slices(np.flatnonzero((no_pt_in_val != IGNORE).any(axis=(1, 2))), 0.2, 1)
    no_pt_in_val[val_z] = np.where(no_pt_in_val[val_z] == 2, 1, no_pt_in_val[val_z])
    with pytest.raises(InputError, match=r"lab.tif: the validation slices \[.*\] hold no Pt"):
        extract(volume, no_pt_in_val, settings(patch_size=16), "lab.tif")


def test_robust_normalisation_ignores_how_much_pt_a_volume_holds():
    """The 99.9 % point falls among the Pt voxels, so the percentile scaling moves with the Pt
    content; the robust one (background and support levels) hardly does."""
    rng = np.random.default_rng(2)
    labels = np.zeros((40, 64, 64), np.uint8)
    labels[:, 20:44] = 1
    base = np.array([0.1, 1.0, 12.0], np.float32)
    scales = {}
    for pt_share in (0.001, 0.004):
        lab = labels.copy()
        lab[(rng.random(lab.shape) < pt_share / 0.375) & (lab == 1)] = 2
        volume = base[lab] + rng.normal(0, 0.2, lab.shape).astype(np.float32)
        scales[pt_share] = {m: Normalisation.of(volume, m) for m in ("percentile", "robust")}
    span = {m: scales[0.004][m].span / scales[0.001][m].span for m in ("percentile", "robust")}
    assert span["percentile"] > 1.5  # the high point jumps from the support to the Pt
    assert abs(span["robust"] - 1) < 0.01
    robust = scales[0.001]["robust"]
    assert robust.low == pytest.approx(0.1, abs=0.02) and robust.high == pytest.approx(1.0, abs=0.02)

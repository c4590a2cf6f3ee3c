"""Evaluation: metrics with known answers, HD95 on known distances, particle statistics, figures."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import sphere
from stemtomo.evaluate import figures, report
from stemtomo.evaluate import metrics as ev
from stemtomo.evaluate import particles as pa


def test_metrics_count_labelled_voxels_only_and_follow_the_absent_class_rule():
    truth = np.array([[[0, 1, 1, 2]], [[0, 0, 255, 255]]], np.uint8)  # (z=2, y=1, x=4)
    pred = np.array([[[0, 1, 0, 2]], [[0, 0, 2, 1]]], np.uint8)       # errors under 255 ignored
    m = ev.class_metrics(pred, truth, voxel_nm=0.5)
    # alumina: TP 1, FN 1, FP 0 → Dice 2/3, IoU 1/2, precision 1, recall 1/2
    assert m[1]["dice"] == pytest.approx(2 / 3) and m[1]["iou"] == pytest.approx(0.5)
    assert m[1]["precision"] == 1.0 and m[1]["recall"] == pytest.approx(0.5)
    # background: TP 3 (1 + 2), FP 1 → Dice 6/7
    assert m[0]["dice"] == pytest.approx(6 / 7)
    assert m[2]["dice"] == 1.0 and m[2]["voxels_true"] == 1
    # Pt is absent from slice 1 in truth and (labelled) prediction: skipped, not scored 1 or 0
    assert m[2]["slices"] == 1 and m[2]["slices_absent"] == 1
    # alumina occurs in slice 0 only; background in both: per-slice mean of 2/3... and 1.0
    assert m[0]["dice_slice_mean"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_a_class_predicted_but_absent_from_the_truth_scores_zero_with_infinite_hd95():
    truth = np.zeros((1, 8, 8), np.uint8)
    pred = truth.copy()
    pred[0, 2:4, 2:4] = 2
    m = ev.class_metrics(pred, truth, 1.0)
    assert m[2]["dice"] == 0.0 and np.isnan(m[2]["recall"]) and m[2]["precision"] == 0.0
    assert m[2]["hd95_nm"] == np.inf and m[2]["dice_slice_mean"] == 0.0


def test_pooled_hd95_counts_a_false_object_in_a_slice_without_the_class():
    """A lone false object in a Pt-free slice weighs by its boundary: a large one makes the pooled
    HD95 infinite, a small one (under 5 % of the boundary pixels) leaves it finite."""
    truth = np.zeros((2, 96, 96), np.uint8)
    truth[0, 10:40, 10:40] = 2
    big = truth.copy()
    big[1, 20:75, 20:75] = 2
    m = ev.class_metrics(big, truth, 1.0)[2]
    assert m["hd95_nm"] == np.inf and m["dice"] < 0.4
    small = truth.copy()
    small[1, 50:52, 50:52] = 2  # 4 boundary pixels against 232 matched ones
    m = ev.class_metrics(small, truth, 1.0)[2]
    assert m["hd95_nm"] == 0.0 and m["hd95_nm_slice_mean"] == 0.0  # the inf slice is not averaged
    assert m["slices"] == 2


def square(shape, y0, x0, size):
    m = np.zeros(shape, bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_hd95_of_shifted_squares_is_the_shift_in_nm():
    a, b = square((40, 40), 10, 10, 16), square((40, 40), 10, 13, 16)
    assert ev.hd95(ev.surface_distances(a, b, (0.5, 0.5))) == pytest.approx(1.5)
    assert ev.hd95(ev.surface_distances(a, a, (0.5, 0.5))) == 0.0


def test_hd95_of_concentric_discs_is_the_radius_gap():
    yy, xx = np.mgrid[:64, :64] - 31.5
    r = np.hypot(yy, xx)
    d = ev.surface_distances(r < 10, r < 16, (1.0, 1.0))
    assert ev.hd95(d) == pytest.approx(6.0, abs=1.0)


def particle_scene():
    labels = np.zeros((40, 60, 60), np.uint8)
    labels[:, :, :20] = 1                       # a support slab
    labels[sphere(labels.shape, (20, 30, 24), 6)] = 2   # on the support (touches x < 20)
    labels[sphere(labels.shape, (10, 15, 45), 4)] = 2   # free-floating
    labels[sphere(labels.shape, (30, 45, 45), 5)] = 2   # free-floating
    return labels


def test_particles_have_the_right_count_size_centroid_and_contact():
    p = pa.particles(particle_scene(), voxel_nm=0.5)
    assert len(p.table) == 3
    by_z = sorted(p.table, key=lambda r: r["z_nm"])
    for row, (z, radius, touching) in zip(by_z, [(10, 4, False), (20, 6, True), (30, 5, False)],
                                          strict=True):
        assert row["diameter_nm"] == pytest.approx(2 * radius * 0.5, rel=0.05)
        assert row["z_nm"] == pytest.approx(z * 0.5, abs=0.01)
        assert row["touches_support"] is touching
    assert set(np.unique(p.labels)) == {0, 1, 2, 3}


def test_diagonal_contact_does_not_merge_particles():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1, 1, 1] = labels[2, 2, 2] = 2
    assert len(pa.particles(labels, 1.0).table) == 2


def test_particle_detection_matches_by_overlap_one_to_one():
    truth = particle_scene()
    pred = truth.copy()
    pred[pred == 2] = 0
    pred[sphere(truth.shape, (20, 31, 25), 6)] = 2   # the big one, slightly moved
    pred[sphere(truth.shape, (30, 45, 45), 2)] = 2   # the third, under-segmented
    pred[sphere(truth.shape, (5, 50, 10), 2)] = 2    # a false particle
    t, p = pa.particles(truth, 1.0), pa.particles(pred, 1.0)
    d = pa.match_particles(p, t)
    assert (d["particles_pred"], d["particles_true"], d["particles_matched"]) == (3, 3, 2)
    assert d["detection_precision"] == pytest.approx(2 / 3)
    assert d["detection_recall"] == pytest.approx(2 / 3) and d["detection_f1"] == pytest.approx(2 / 3)
    # restricted to slices 15–40: the false particle (z=5) and the truth at z=10 drop out
    r = pa.match_particles(p, t, (15, 40), 1.0)
    assert (r["particles_pred"], r["particles_true"], r["detection_precision"]) == (2, 2, 1.0)


def test_detection_f1_is_zero_when_nothing_matches_and_undefined_with_no_particles():
    truth, pred = np.zeros((20, 20, 20), np.uint8), np.zeros((20, 20, 20), np.uint8)
    truth[sphere(truth.shape, (5, 5, 5), 2)] = 2
    pred[sphere(truth.shape, (14, 14, 14), 2)] = 2
    none = np.zeros_like(truth)
    t, p, n = (pa.particles(v, 1.0) for v in (truth, pred, none))
    assert pa.match_particles(p, t)["detection_f1"] == 0.0      # a false one, a missed one
    assert pa.match_particles(n, t)["detection_f1"] == 0.0      # nothing found
    assert pa.match_particles(p, n)["detection_f1"] == 0.0      # only false particles
    assert np.isnan(pa.match_particles(n, n)["detection_f1"])   # nothing to find, nothing found


def test_region_is_the_validation_slab_or_the_whole_volume():
    assert report.evaluation_region(100, [52, 60, 69])[0] == (52, 70)
    assert report.evaluation_region(100, None)[0] == (0, 100)
    truth = np.zeros((10, 4, 4), np.uint8)
    truth[:] = 255
    truth[[3, 5, 7]] = 0
    truth[5, 0, 0] = 2
    assert report.error_slices(truth, (2, 9), count=2) == [3, 5]


def test_volume_fractions_ignore_unlabelled_voxels():
    labels = np.array([0, 1, 1, 2, 255, 255], np.uint8)
    assert report.volume_fractions(labels) == {"fraction_background": 0.25, "fraction_alumina": 0.5,
                                           "fraction_pt": 0.25}


def test_table1_has_the_seed_layout():
    m = ev.class_metrics(particle_scene()[:3], particle_scene()[:3], 1.0)
    md = report.table1_markdown({"unet": m, "attention_unet": m}, "validation slab z = 0–2")
    lines = md.splitlines()
    assert "| Model | γ-Alumina | Pt NPs | Background/pores |" in lines
    assert "| unet | 1.000 | — | 1.000 |" in lines  # Pt absent from both: no score


def test_figures_are_written(tmp_path):
    truth = particle_scene()
    volume = truth.astype(np.float32) + np.random.default_rng(0).normal(0, 0.1, truth.shape)
    pred = np.where(truth == 2, 1, truth).astype(np.uint8)
    figures.error_maps(tmp_path / "e.png", volume, truth, pred, [10, 20], "unet")
    figures.error_maps(tmp_path / "n.png", volume, None, pred, [10, 20], "unet")
    figures.particle_sizes(tmp_path / "p.png", {"truth": [2.0, 3.5, 5.0], "unet": [2.2, 3.0]})
    for name in ("e.png", "n.png", "p.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / name).stat().st_size > 5000

import numpy as np
import pytest

from stemtomo.core import geometry


def blob(shape, centre_yx, sigma=2.0):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((y - centre_yx[0]) ** 2 + (x - centre_yx[1]) ** 2) / (2 * sigma**2))


def centroid(img):
    y, x = np.mgrid[: img.shape[0], : img.shape[1]]
    return np.array([(img * y).sum(), (img * x).sum()]) / img.sum()


@pytest.mark.parametrize("angle,offset,shift", [(0, 0, (0, 0)), (3.2, 2.6, (1.3, -2.2)),
                                                 (-12.0, -4.1, (-3.7, 0.4))])
def test_point_maps_round_trip(angle, offset, shift):
    pts = np.random.default_rng(0).uniform(-30, 30, (20, 2))
    raw = geometry.aligned_to_raw(pts, angle, offset, shift)
    np.testing.assert_allclose(geometry.raw_to_aligned(raw, angle, offset, shift), pts, atol=1e-12)


def test_axis_direction_follows_convention():
    # The tilt axis (aligned y axis through the centre, shifted by the offset) is rotated by φ.
    p = np.array([[10.0, 0.0], [-10.0, 0.0]])
    r = geometry.aligned_to_raw(p, 90.0, 0.0, (0, 0))
    np.testing.assert_allclose(r, [[0, -10], [0, 10]], atol=1e-12)


@pytest.mark.parametrize("angle,offset,shift", [(3.2, 2.6, (1.3, -2.2)), (-7.5, -1.2, (2.5, 3.1))])
def test_image_warp_moves_features_where_the_point_map_says(angle, offset, shift):
    shape = (96, 96)
    c = geometry.centre(96)
    feature = np.array([20.3, -11.7])  # relative to the centre, aligned frame
    img = blob(shape, feature + c)
    raw = geometry.raw_from_aligned(img, angle, offset, shift, order=3)
    expected = geometry.aligned_to_raw(feature, angle, offset, shift) + c
    np.testing.assert_allclose(centroid(raw), expected, atol=0.02)
    back = geometry.aligned_from_raw(raw, angle, offset, shift, order=3)
    np.testing.assert_allclose(centroid(back), feature + c, atol=0.02)


def test_bin_mean_averages_blocks_and_keeps_centre():
    a = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(geometry.bin_mean(a, 2), [[2.5, 4.5], [10.5, 12.5]])
    # A feature at the fine-grid centre stays at the coarse-grid centre.
    fine = blob((64, 64), (geometry.centre(64),) * 2, sigma=3)
    np.testing.assert_allclose(centroid(geometry.bin_mean(fine, 2)), (geometry.centre(32),) * 2,
                               atol=1e-6)


def test_gauge_fix_recovers_the_offset_and_drops_object_translations():
    rng = np.random.default_rng(0)
    angles = np.arange(-70, 71, 2.0)
    th = np.deg2rad(angles)
    raw = rng.normal(0, 1.0, (len(angles), 2))
    _, pure = geometry.gauge_fix(angles, raw)  # shifts without gauge components
    # Add an axis offset, an object translation (x: a cos θ + b sin θ) and a y translation.
    t = pure.copy()
    t[:, 1] += 2.6 + 1.7 * np.cos(th) - 0.9 * np.sin(th)
    t[:, 0] += 3.3
    offset, shifts = geometry.gauge_fix(angles, t)
    assert offset == pytest.approx(2.6, abs=1e-9)
    np.testing.assert_allclose(shifts, pure, atol=1e-9)
    # Raw/axis frame conversions are inverse rotations.
    np.testing.assert_allclose(geometry.raw_frame(geometry.axis_frame(raw, 7.0), 7.0), raw, atol=1e-12)

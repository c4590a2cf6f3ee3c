import numpy as np
import pytest
from scipy import ndimage

from stemtomo.align.registration import bandpass, fourier_shift, register, taper
from stemtomo.core import geometry, io


def texture(shape, seed=0, sigma=3.0):
    return ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma)


@pytest.mark.parametrize("shift", [(3.37, -5.81), (0.21, 0.07), (-10.55, 7.05)])
def test_subpixel_shift_is_recovered_with_taper_and_bandpass(shift):
    img = texture((128, 128))
    mov = fourier_shift(img, np.array(shift)) + np.random.default_rng(1).normal(0, 0.002, img.shape)
    r = register(img, mov, upsample=50, filt=bandpass(img.shape, 0.02, 0.3), window=taper(img.shape))
    np.testing.assert_allclose(r.shift, shift, atol=0.03)
    assert r.quality > 0.95


def test_one_dimensional_and_unrelated_images():
    p = texture((256,), sigma=2)
    shift = register(p, fourier_shift(p, np.array([2.33])), upsample=100).shift[0]
    assert shift == pytest.approx(2.33, abs=0.01)
    r = register(texture((64, 64), 0), texture((64, 64), 5), filt=bandpass((64, 64), 0.02, 0.3))
    assert r.quality < 0.3


def test_max_shift_limits_the_search():
    img = texture((64, 64))
    mov = fourier_shift(img, np.array([0.0, 20.0]))
    assert abs(register(img, mov, max_shift=5).shift[1]) <= 5.5


def test_xf_file_maps_raw_to_aligned_like_the_geometry(tmp_path):
    shifts = np.array([[1.5, -2.0], [0.0, 0.3]])
    io.write_xf(tmp_path / "a.xf", 7.5, 2.2, shifts)
    xf = io.read_xf(tmp_path / "a.xf")
    r = np.array([[10.0, -4.0], [-3.0, 12.0]])  # (y, x) raw, relative to the centre
    for i in range(2):
        expected = geometry.raw_to_aligned(r, 7.5, 2.2, shifts[i])
        xy = r[:, ::-1] @ xf[i, :, :2].T + xf[i, :, 2]
        np.testing.assert_allclose(xy[:, ::-1], expected, atol=2e-3)

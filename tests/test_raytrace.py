import numpy as np
import pytest

from stemtomo.core.geometry import centre
from stemtomo.tomo import joseph


def profile_centroid(p):
    u = np.arange(p.size)
    return (p * u).sum() / p.sum()


@pytest.mark.parametrize("angle", [0.0, 17.0, -38.0, 45.0, 52.0, -70.0, 89.0])
def test_blob_projects_to_x_cos_plus_z_sin(angle):
    nz, nx = 40, 64
    z, x = 6.3, -11.6  # blob centre relative to the volume centre
    zz, xx = np.mgrid[:nz, :nx]
    g = np.exp(-((zz - centre(nz) - z) ** 2 + (xx - centre(nx) - x) ** 2) / (2 * 1.5**2))
    vol = g[:, None, :].astype(np.float32)
    proj = joseph.project(vol, np.array([angle]))[0, 0]
    th = np.deg2rad(angle)
    expected = x * np.cos(th) + z * np.sin(th) + centre(nx)
    assert profile_centroid(proj) == pytest.approx(expected, abs=0.02)
    assert proj.sum() == pytest.approx(vol.sum(), rel=5e-3)


def test_mass_is_conserved_and_ball_chord_is_its_diameter():
    n, r = 64, 14.0
    z, y, x = np.mgrid[:n, :n, :n] - centre(n)
    ball = (z**2 + y**2 + x**2 <= r * r).astype(np.float32)
    proj = joseph.project(ball, np.array([0.0, 30.0, 60.0, -80.0]))
    np.testing.assert_allclose(proj.sum(axis=(1, 2)), ball.sum(), rtol=1e-4)
    c = int(centre(n))
    chord = proj[:, c, c - 1: c + 2].mean(axis=1)  # rays through the centre
    np.testing.assert_allclose(chord, 2 * r, rtol=0.05)


def test_voxel_length_scales_the_integral():
    vol = np.ones((8, 2, 8), dtype=np.float32)
    a = joseph.project(vol, np.array([0.0]))
    b = joseph.project(vol, np.array([0.0]), voxel_length=0.25)
    np.testing.assert_allclose(b, a * 0.25)

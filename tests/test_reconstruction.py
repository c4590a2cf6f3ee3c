"""Reconstruction: MLEM/OSEM properties, previews, backends, slabs, masks and bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import simulate_params, stage
from stemtomo.core import geometry
from stemtomo.core.device import gpu_available
from stemtomo.core.errors import InputError
from stemtomo.core.slabs import slab_rows
from stemtomo.recon.reconstruct import combine_residuals, reconstruct
from stemtomo.recon.settings import ReconstructSettings
from stemtomo.simulate.acquisition import simulate
from stemtomo.tomo.algorithms import cylinder_mask, fbp, interleaved_subsets, mlem, sirt
from stemtomo.tomo.projectors import make_projector, parallel3d_vectors


def settings(**overrides) -> ReconstructSettings:
    return stage(ReconstructSettings, **overrides)


@pytest.fixture(scope="module")
def data():
    """The phantom's noisy series, aligned with the true geometry, and its truth."""
    sim = simulate(simulate_params())
    t = sim.truth
    aligned = np.stack([geometry.aligned_from_raw(im - 20.0, t["axis_angle_deg"], t["axis_offset_px"],
                                                  s, order=3)
                        for im, s in zip(sim.tiltseries, t["shifts_yx_px"], strict=True)])
    return aligned.astype(np.float32), sim


def corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_mlem_is_positive_monotone_and_matches_the_phantom(data):
    stack, sim = data
    vol, rec = reconstruct(stack, sim.angles, settings(iterations=30))
    assert vol.min() >= 0
    assert np.all(np.diff(rec["residuals"]) < 0), rec["residuals"]
    assert corr(vol, sim.density) > 0.95
    # Contrast ordering survives: Pt ≫ alumina ≫ background.
    means = [vol[sim.labels == c].mean() for c in (0, 1, 2)]
    assert means[2] > 5 * means[1] > 5 * means[0]


def test_mlem_rejects_a_zero_start_and_negative_or_nan_data(data):
    stack, sim = data
    proj = make_projector("joseph-cpu", sim.angles, (16, 4, 64))
    y = np.clip(stack[:, 30:34], 0, None)
    with pytest.raises(ValueError, match="non-negative start with positive voxels"):
        mlem(proj, y, 2, x0=np.zeros(proj.volume_shape))
    # MLEM's own result (exact zeros included) is a valid start: warm starts continue it.
    first = mlem(proj, y, 3)
    start = first.volume.copy()
    start[0, 0, 0] = 0.0  # as MLEM itself leaves voxels no ray supports
    more = mlem(proj, y, 3, x0=start)
    assert more.residuals[-1] < first.residuals[-1]
    with pytest.raises(ValueError, match="non-negative"):
        mlem(proj, y - 1000, 2)
    bad = stack.copy()
    bad[3, 5, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        reconstruct(bad, sim.angles, settings(), source="aligned.tif")


def test_residuals_are_those_of_each_iterations_result(data):
    """The recorded residual after k iterations is ‖Ax_k − y‖/‖y‖ of the estimate a k-iteration
    run returns, for MLEM, OSEM and SIRT alike (OSEM's subsets see x change in between, so their
    own misfits would not be)."""
    stack, sim = data
    proj = make_projector("joseph-cpu", sim.angles, (32, 4, 64))
    y = np.clip(stack[:, 30:34], 0, None)
    norm = np.linalg.norm(y)
    for algorithm in (lambda n: mlem(proj, y, n), lambda n: mlem(proj, y, n, subsets=4),
                      lambda n: sirt(proj, y, n)):
        rec = algorithm(3)
        assert len(rec.residuals) == 3
        for k in (1, 3):
            exact = np.linalg.norm(proj.forward(algorithm(k).volume) - y) / norm
            assert rec.residuals[k - 1] == pytest.approx(exact, rel=1e-4)


def test_osem_reaches_the_mlem_error_in_far_fewer_iterations(data):
    stack, sim = data
    _, ml = reconstruct(stack, sim.angles, settings(iterations=50))
    _, os_ = reconstruct(stack, sim.angles, settings(algorithm="osem", iterations=10, subsets=8))
    target = ml["residuals"][-1]
    reached = next(i + 1 for i, r in enumerate(os_["residuals"]) if r <= target * 1.01)
    print({"mlem_50_residual": target, "osem8_iterations_to_reach": reached})
    assert reached <= 10


def test_subsets_are_interleaved_by_angle():
    assert [s.tolist() for s in interleaved_subsets(10, 3)] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert len(interleaved_subsets(5, 8)) == 5


@pytest.mark.parametrize("algorithm", ["mlem", "osem", "sirt", "fbp"])
def test_slabs_join_to_exactly_the_full_reconstruction(data, algorithm):
    stack, sim = data
    s = settings(algorithm=algorithm, iterations=5, mask="cylinder", height=40)
    full, full_rec = reconstruct(stack, sim.angles, s)
    parts = [reconstruct(stack, sim.angles, s, rows=r) for r in slab_rows(stack.shape[1], 3)]
    joined = np.concatenate([p[0] for p in parts], axis=1)
    assert np.array_equal(joined, full)  # bit-identical
    np.testing.assert_allclose(combine_residuals([p[1] for p in parts]), full_rec["residuals"],
                               rtol=1e-5)
    assert full.shape == (40, 64, 64)


def test_cylinder_mask_and_previews(data):
    stack, sim = data
    vol, _ = reconstruct(stack, sim.angles, settings(algorithm="fbp", mask="cylinder"))
    m = cylinder_mask(64, 64)
    assert np.all(vol[np.broadcast_to(m == 0, vol.shape)] == 0) and m[32, 0, 32] == 1
    assert corr(vol, sim.density) > 0.8
    vol, rec = reconstruct(stack, sim.angles, settings(algorithm="sirt", iterations=20))
    assert corr(vol, sim.density) > 0.85 and np.all(np.diff(rec["residuals"]) < 0)


def test_fbp_of_a_ball_has_the_right_scale():
    n, r = 48, 10.0
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    ball = (z**2 + y**2 + x**2 <= r * r).astype(np.float32)
    angles = np.arange(-90, 90, 1.0)
    proj = make_projector("joseph-cpu", angles, ball.shape)
    vol = fbp(proj, proj.forward(ball), window="ram-lak").volume
    assert vol[ball > 0].mean() == pytest.approx(1.0, abs=0.05)


def test_bad_geometry_is_named(data):
    stack, sim = data
    with pytest.raises(InputError, match="aligned.tif: 71 images but 70 angles"):
        reconstruct(stack, sim.angles[:70], settings(), source="aligned.tif")
    with pytest.raises(InputError, match="reconstruct.slabs"):
        slab_rows(64, 65)


@pytest.mark.skipif(importlib.util.find_spec("astra") is None, reason="astra-toolbox not installed")
def test_astra_cpu_agrees_with_joseph(data):
    stack, sim = data
    a, _ = reconstruct(stack[:, 20:28], sim.angles, settings(iterations=10, backend="astra-cpu"),
                       threads=2)
    j, _ = reconstruct(stack[:, 20:28], sim.angles, settings(iterations=10, backend="joseph-cpu"))
    assert np.linalg.norm(a - j) / np.linalg.norm(j) < 0.02


def test_parallel3d_vectors_follow_the_stemtomo_geometry():
    """Project points along each ASTRA ray onto its detector plane: the detector coordinates must
    be u = x·cos θ + z·sin θ (columns) and y (rows), and shifts move the detector centre."""
    angles = np.array([-70.0, -12.5, 0.0, 33.0, 88.0])
    vec = parallel3d_vectors(angles, shifts_yu=np.tile([1.5, -2.25], (len(angles), 1)))
    rng = np.random.default_rng(0)
    pts = rng.uniform(-20, 20, (10, 3))  # (X, Y, Z) = (x, y, z)
    for row, a in zip(vec, np.deg2rad(angles), strict=True):
        ray, d, u, v = row[:3], row[3:6], row[6:9], row[9:]
        normal = np.cross(u, v)
        t = ((d - pts) @ normal) / (ray @ normal)
        on_plane = pts + t[:, None] * ray - d
        coords = np.linalg.lstsq(np.stack([u, v], axis=1), on_plane.T, rcond=None)[0].T
        np.testing.assert_allclose(coords[:, 0] + (-2.25),
                                   pts[:, 0] * np.cos(a) + pts[:, 2] * np.sin(a), atol=1e-9)
        np.testing.assert_allclose(coords[:, 1] + 1.5, pts[:, 1], atol=1e-9)


gpu = pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU visible to ASTRA and torch")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("reference", ["astra-cpu", "joseph-cpu"])
def test_astra_gpu_agrees_with_the_cpu_projectors(data, reference):
    stack, sim = data
    g = make_projector("astra-gpu", sim.angles, sim.density.shape)
    c = make_projector(reference, sim.angles, sim.density.shape)
    pg, pc = g.forward(sim.density), c.forward(sim.density)
    assert np.linalg.norm(pg - pc) / np.linalg.norm(pc) < 0.02
    bg, bc = g.back(pc), c.back(pc)
    assert np.linalg.norm(bg - bc) / np.linalg.norm(bc) < 0.02
    vg, rg = reconstruct(stack, sim.angles, settings(iterations=20, backend="astra-gpu"))
    vc, _ = reconstruct(stack, sim.angles, settings(iterations=20, backend=reference))
    assert rg["backend"] == "astra-gpu"
    assert np.linalg.norm(vg - vc) / np.linalg.norm(vc) < 0.02


@pytest.mark.gpu
@gpu
def test_gpu_mlem_stays_on_the_device_and_its_residual_falls(data):
    import torch

    stack, sim = data
    p = make_projector("auto", sim.angles, (64, stack.shape[1], stack.shape[2]))
    assert p.name == "astra-gpu"
    y = p.to_device(np.clip(stack, 0, None))
    rec = mlem(p, y, 15)
    assert isinstance(rec.volume, torch.Tensor) and rec.volume.is_cuda
    assert float(rec.volume.min()) >= 0
    assert all(b <= a * (1 + 1e-4) for a, b in zip(rec.residuals, rec.residuals[1:], strict=False))
    osem, _ = reconstruct(stack, sim.angles, settings(algorithm="osem", iterations=3, backend="auto"))
    assert corr(osem, sim.density) > 0.8


def test_memory_chunks_give_the_same_volume(data):
    stack, sim = data
    s = settings(algorithm="osem", iterations=3)
    whole, rec = reconstruct(stack, sim.angles, s)
    chunked, crec = reconstruct(stack, sim.angles, s.replace(max_memory_fraction=1e-12))
    assert crec["chunks"] == stack.shape[1] and rec["chunks"] == 1
    assert np.array_equal(whole, chunked)
    np.testing.assert_allclose(crec["residuals"], rec["residuals"], rtol=1e-5)


def test_mrc_output_round_trips(tmp_path):
    import mrcfile

    from stemtomo.core import io

    vol = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    io.write_mrc(tmp_path / "v.mrc", vol, 0.4)
    with mrcfile.open(tmp_path / "v.mrc") as m:
        np.testing.assert_array_equal(m.data, vol)
        assert float(m.voxel_size.x) == pytest.approx(4.0)


def test_edge_cases_one_tilt_and_the_clipping_record(data):
    stack, sim = data
    one = make_projector("joseph-cpu", np.array([0.0]), (16, 2, 16))
    assert np.isfinite(fbp(one, np.ones((1, 2, 16), np.float32)).volume).all()
    shifted = stack - np.percentile(stack, 10)  # some negative data, as vacuum noise gives
    for algorithm, clips in (("mlem", True), ("sirt", False), ("fbp", False)):
        _, rec = reconstruct(shifted, sim.angles, settings(algorithm=algorithm, iterations=2),
                             rows=(30, 32))
        assert (rec["negative_fraction_clipped"] > 0) == clips, algorithm

"""The TomoPy backend against the projector loop: geometry (centre, angle sign, frame to 0.1 px),
each algorithm, OSEM's interleaved subsets, threads, height, vacuum and NaN; and the finite-volume
guard every backend goes through. TomoPy is conda-forge only: these tests run where it imports
(`make test` installs the CPU wheel from ../shared/tomopy when that folder exists)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import stage
from stemtomo.align.registration import register
from stemtomo.core import geometry
from stemtomo.core.errors import InputError
from stemtomo.recon import reconstruct as reconstruct_module
from stemtomo.recon.reconstruct import reconstruct
from stemtomo.recon.settings import ReconstructSettings
from stemtomo.tomo.algorithms import Reconstruction, interleaved_subsets
from stemtomo.tomo.projectors import make_projector


def tomopy_missing() -> str | None:
    """Why the TomoPy tests cannot run here (None: they can)."""
    if importlib.util.find_spec("tomopy") is None:
        return ("TomoPy is not installed: it is conda-forge only (envs/recon.yaml); `make test` "
                "installs the CPU wheel from ../shared/tomopy where that folder exists")
    try:
        import tomopy  # noqa: F401
    except (ImportError, OSError) as exc:  # the wheel without Debian's libfftw3-single3
        return f"TomoPy does not import ({exc}): apt-get install libfftw3-single3"
    return None


MISSING = tomopy_missing()
needs_tomopy = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
ROWS = (24, 40)


def settings(**overrides) -> ReconstructSettings:
    return stage(ReconstructSettings, **overrides)


@pytest.fixture(scope="module")
def data(small_sim):
    """The phantom's noisy series, aligned with the true geometry (as in test_reconstruction)."""
    t = small_sim.truth
    aligned = np.stack([geometry.aligned_from_raw(im - 20.0, t["axis_angle_deg"], t["axis_offset_px"],
                                                  s, order=3)
                        for im, s in zip(small_sim.tiltseries, t["shifts_yx_px"], strict=True)])
    return aligned.astype(np.float32), small_sim.angles


def corr(a, b) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def both(stack, angles, s, **kwargs):
    """(TomoPy volume, its record, the joseph-cpu volume) for the same settings."""
    t, rec = reconstruct(stack, angles, s.replace(backend="tomopy"), **kwargs)
    j, _ = reconstruct(stack, angles, s.replace(backend="joseph-cpu"), **kwargs)
    return t, rec, j


def assert_same_frame(t, j):
    """No subpixel shift between the volumes (upsampled phase correlation, 0.01 px)."""
    shift = register(j, t, upsample=100).shift
    assert np.all(np.abs(shift) <= 0.1), shift


@pytest.fixture
def spy(monkeypatch):
    """Every tomopy.recon call's keyword arguments and result, the call itself unchanged."""
    import tomopy

    calls, real = [], tomopy.recon

    def recon(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append((kwargs, out.copy()))
        return out

    monkeypatch.setattr(tomopy, "recon", recon)
    return calls


@needs_tomopy
def test_tomopy_centre_puts_the_axis_on_stemtomo_s_detector_centre():
    """A blob about voxel (z, x) relative to the centre must project onto u = x·cos θ + z·sin θ
    about the detector centre (n − 1)/2 — with center = n/2 and TomoPy's θ = −θ (odd, even n)."""
    import tomopy

    from stemtomo.recon.tomopy_backend import centre, orientation

    assert orientation() == -1
    for n in (33, 32):
        iz, ix = 20, 9
        zz, xx = np.ogrid[:n, :n]
        obj = np.exp(-((zz - iz) ** 2 + (xx - ix) ** 2) / 4.0).astype(np.float32)[None]
        c = (n - 1) / 2
        for angle in (-60.0, -15.0, 0.0, 35.0):
            proj = tomopy.project(obj, -np.deg2rad([angle]), center=centre(n), pad=False)[0, 0]
            u = np.arange(n)
            expected = c + (ix - c) * np.cos(np.deg2rad(angle)) + (iz - c) * np.sin(np.deg2rad(angle))
            assert (proj * u).sum() / proj.sum() == pytest.approx(expected, abs=0.05), (n, angle)


@needs_tomopy
@pytest.mark.parametrize("algorithm, iterations, minimum",
                         [("mlem", 20, 0.98), ("osem", 5, 0.98), ("sirt", 20, 0.98), ("fbp", 1, 0.95)])
def test_tomopy_matches_the_projector_loop(data, algorithm, iterations, minimum):
    stack, angles = data
    t, rec, j = both(stack, angles, settings(algorithm=algorithm, iterations=iterations), rows=ROWS)
    assert rec["backend"] == "tomopy" and t.shape == j.shape == (64, 16, 64)
    assert np.isfinite(t).all()
    assert corr(t, j) >= minimum
    assert_same_frame(t, j)


@needs_tomopy
@pytest.mark.parametrize("algorithm, height", [("mlem", 40), ("sirt", 41), ("fbp", 41), ("fbp", 72)])
def test_tomopy_height_is_the_support_like_the_projector_loop(data, algorithm, height):
    """height ≠ width: TomoPy reconstructs on an nz × nx grid (not a cropped square), so the thin
    support constrains it as it does the projector loop, in the same frame (both parities)."""
    stack, angles = data
    t, _, j = both(stack, angles, settings(algorithm=algorithm, iterations=10, height=height),
                   rows=ROWS)
    assert t.shape == j.shape == (height, 16, 64)
    assert corr(t, j) >= (0.98 if algorithm != "fbp" else 0.95)
    assert_same_frame(t, j)


@needs_tomopy
@pytest.mark.parametrize("window", ["ram-lak", "hann", "shepp-logan"])
def test_tomopy_fbp_has_stemtomo_s_scale(window):
    """gridrec's own scale is ≈ 12 % high and assumes π/n per tilt: on a disc seen over ±70°, the
    core comes out as stemtomo's FBP gives it (their rims differ: gridrec interpolates sharper)."""
    n, radius = 64, 12.0
    z, x = (a - (n - 1) / 2 for a in np.ogrid[:n, :n])
    disc = (z**2 + x**2 <= radius**2).astype(np.float32)[:, None]
    core = np.broadcast_to((z**2 + x**2 <= (radius / 2) ** 2)[:, None], disc.shape)
    angles = np.arange(-70, 71, 2.0)
    data = make_projector("joseph-cpu", angles, disc.shape).forward(disc)
    t, _, j = both(data, angles, settings(algorithm="fbp", fbp_window=window))
    assert t[core].mean() / j[core].mean() == pytest.approx(1.0, abs=0.02)
    assert corr(t, j) > 0.99


@needs_tomopy
def test_tomopy_osem_subsets_are_interleaved_by_angle(data, spy):
    """TomoPy's default blocks are contiguous runs of tilts; ours are interleaved (0, k, 2k, …):
    with them OSEM(8) reaches 50 MLEM iterations' residual within 10 iterations."""
    stack, angles = data
    rows = (28, 36)
    _, ml = reconstruct(stack, angles, settings(iterations=50, backend="tomopy"), rows=rows)
    spy.clear()
    reconstruct(stack, angles, settings(algorithm="osem", iterations=10, subsets=8,
                                        backend="tomopy"), rows=rows)
    kwargs = spy[0][0]
    assert kwargs["num_block"] == 8
    assert kwargs["ind_block"].tolist() == np.concatenate(interleaved_subsets(len(angles), 8)).tolist()
    y = np.clip(stack[:, rows[0]:rows[1]], 0, None)
    projector = make_projector("joseph-cpu", angles, (64, 8, 64))
    residuals = [np.linalg.norm(projector.forward(out.transpose(1, 0, 2)) - y) / np.linalg.norm(y)
                 for _, out in spy]
    assert len(residuals) == 10
    reached = next(i + 1 for i, r in enumerate(residuals) if r <= ml["residuals"][-1] * 1.01)
    assert reached <= 10, residuals


@needs_tomopy
@pytest.mark.parametrize("algorithm", ["mlem", "fbp"])
def test_tomopy_honours_threads(data, spy, algorithm):
    stack, angles = data
    reconstruct(stack, angles, settings(algorithm=algorithm, iterations=2, backend="tomopy"),
                rows=(30, 32), threads=3)
    assert spy and all(kwargs["ncore"] == 3 for kwargs, _ in spy)


@needs_tomopy
@pytest.mark.parametrize("algorithm", ["mlem", "osem"])
def test_tomopy_em_gives_no_nan_and_vacuum_rows_are_zero(data, algorithm):
    """Clipped data have exact zeros, where TomoPy's EM computes 0/0 (the raw call below gives
    NaN); an all-vacuum row gives NaN everywhere. The backend's volume is finite, vacuum rows 0."""
    import tomopy

    stack, angles = data
    series = np.clip(stack[:, 20:28], 0, None)
    series[:, 3] = 0.0  # a row of vacuum
    raw = tomopy.recon(series, -np.deg2rad(angles), center=32, algorithm="osem", num_iter=2,
                       num_block=8, init_recon=np.ones((8, 64, 64), np.float32))
    assert np.isnan(raw).any()  # the upstream behaviour the backend must not pass on
    s = settings(algorithm=algorithm, iterations=5, subsets=8)
    t, _, j = both(series, angles, s)
    assert np.isfinite(t).all() and t.min() >= 0
    assert np.all(t[:, 3] == 0) and np.all(j[:, 3] == 0)
    assert corr(t, j) > 0.98


@needs_tomopy
def test_tomopy_refuses_a_geometry_it_cannot_match(monkeypatch):
    import tomopy

    from stemtomo.recon import tomopy_backend

    tomopy_backend.orientation.cache_clear()
    monkeypatch.setattr(tomopy, "project", lambda obj, theta, **kw: np.random.default_rng(0).random(
        (len(theta), 1, obj.shape[2])).astype(np.float32))
    try:
        with pytest.raises(RuntimeError, match="geometry could not be matched to stemtomo's"):
            tomopy_backend.orientation()
    finally:
        tomopy_backend.orientation.cache_clear()


@needs_tomopy
@pytest.mark.skipif(importlib.util.find_spec("astra") is None, reason="astra-toolbox not installed")
def test_tomopy_gpu_arguments_use_the_same_geometry(data):
    """The GPU path (tomopy.astra, ASTRA's EM_CUDA/SIRT_CUDA) gets the same centre, angle sign and
    nz × nx grid. No GPU here: the same arguments with ASTRA's CPU SIRT must land in our frame
    (tomopy.astra offsets ASTRA's detector by center − n/2 on the GPU, rolls it on the CPU: 0 both)."""
    import tomopy

    from stemtomo.recon.tomopy_backend import orientation, recon_kwargs

    stack, angles = data
    s = settings(algorithm="sirt", iterations=30, height=40)
    kwargs = recon_kwargs(s, 40, 64, len(angles), gpu=True, threads=2)
    assert kwargs["algorithm"] is tomopy.astra and kwargs["center"] == 32.0
    assert kwargs["options"] == {"proj_type": "cuda", "method": "SIRT_CUDA", "num_iter": 30,
                                 "extra_options": {"MinConstraint": 0.0}}
    assert (kwargs["num_gridx"], kwargs["num_gridy"]) == (40, 64)
    assert recon_kwargs(s.replace(algorithm="mlem"), 40, 64, len(angles), True, 2)["options"][
        "method"] == "EM_CUDA"
    kwargs["options"] = {**kwargs["options"], "proj_type": "linear", "method": "SIRT"}
    y = np.ascontiguousarray(stack[:, ROWS[0]:ROWS[1]])
    t = tomopy.recon(y, orientation() * np.deg2rad(angles),
                     init_recon=np.zeros((16, 40, 64), np.float32), **kwargs).transpose(1, 0, 2)
    j, _ = reconstruct(stack, angles, s.replace(backend="joseph-cpu"), rows=ROWS)
    assert corr(t, j) >= 0.98
    assert_same_frame(t, j)


def test_no_backend_hands_on_a_non_finite_volume(data, monkeypatch):
    """Whatever the backend, a NaN/Inf volume stops the stage with the rows it is in (the slab
    script writes nothing then)."""
    stack, angles = data

    def broken(projector, y, s, mask, progress):
        volume = np.ones(projector.volume_shape, np.float32)
        volume[5, 2, 7] = np.nan
        return Reconstruction(volume, [0.5])

    monkeypatch.setattr(reconstruct_module, "_run", broken)
    with pytest.raises(InputError, match=r"aligned.tif: the mlem reconstruction on joseph-cpu has 1 "
                                         r"NaN/Inf voxels of \d+ \(rows 32–32\)"):
        reconstruct(stack, angles, settings(backend="joseph-cpu"), rows=(30, 34),
                    source="aligned.tif")

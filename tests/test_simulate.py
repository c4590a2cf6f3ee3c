"""The simulated acquisition: HAADF physics, noise, missing wedge and the recorded misalignment."""

import numpy as np
import pytest

from conftest import simulate_params
from stemtomo.core import geometry
from stemtomo.simulate import phantom
from stemtomo.simulate.acquisition import acquisition_order, scattering_per_nm, simulate, tilt_angles
from stemtomo.simulate.settings import TiltRange
from stemtomo.tomo import joseph


def test_outputs_have_the_contracted_shapes_and_types(small_sim):
    s, n = small_sim, 64
    assert s.tiltseries.shape == (71, n, n) and s.tiltseries.dtype == np.float32
    assert s.labels.shape == (n, n, n) and s.labels.dtype == np.uint8
    assert set(np.unique(s.labels)) == {0, 1, 2}
    assert s.density.shape == (n, n, n)
    assert len(s.truth["shifts_yx_px"]) == len(s.angles) == 71


def test_class_fractions_like_real_catalysts(small_sim):
    f = small_sim.truth["class_fractions"]
    assert 0.002 <= f["pt"] <= 0.005
    assert 0.03 <= f["alumina"] <= 0.3
    assert f == pytest.approx(phantom.class_fractions(small_sim.labels))


def test_contrast_grows_with_atomic_number_as_z_to_the_1_7():
    mu = scattering_per_nm(1.7, 0.012)
    assert mu["pt"] == pytest.approx(0.012)
    # Pt: 66.2 atoms/nm³ × 78^1.7; γ-Al2O3: 21.6 units/nm³ × (2·13^1.7 + 3·8^1.7).
    assert mu["pt"] / mu["alumina"] == pytest.approx(66.22 * 78**1.7 / (21.56 * (2 * 13**1.7 + 3 * 8**1.7)),
                                                     rel=0.01)
    assert 15 < mu["pt"] / mu["alumina"] < 25
    lower = scattering_per_nm(1.3, 0.012)
    assert lower["alumina"] > mu["alumina"]  # a weaker Z dependence narrows the contrast


def test_density_ordering_in_the_phantom(small_sim):
    d, lab = small_sim.density, small_sim.labels
    pt, al, bg = (d[lab == c].mean() for c in (2, 1, 0))
    assert pt > 5 * al > 0 and bg < 0.2 * al


def test_intensity_grows_with_thickness_and_has_poisson_statistics():
    p = simulate_params(haadf={"detector_noise": 0.0, "dark_level": 0.0, "intensity_jitter": 0.0},
                        misalignment={"shift_px": 0.0, "drift_px": 0.0, "axis_angle_deg": 0.0,
                                      "axis_offset_px": 0.0})
    p = p.replace(pt=p.pt.replace(volume_fraction=1e-6))
    s = simulate(p)
    ref = int(np.argmin(np.abs(s.angles)))
    mu_al = scattering_per_nm(1.7, p.haadf.pt_scatter_per_nm)["alumina"]
    # Alumina path length along the beam at 0° (partial volumes included), rays missing the Pt.
    thickness = s.density.sum(axis=0) * p.pixel_size_nm / mu_al
    mask = (thickness > 0.5) & ~(s.labels == 2).any(axis=0)
    img = s.expected[ref]  # noise-free counts; the noise is tested below
    slope, intercept = np.polyfit(thickness[mask], img[mask], 1)
    r = np.corrcoef(thickness[mask], img[mask])[0, 1]
    dose_px = p.haadf.dose_e_per_A2 * (p.pixel_size_nm * 10) ** 2
    assert thickness.max() > 10  # nm: a real aggregate, not a film
    assert r > 0.99
    assert slope == pytest.approx(dose_px * mu_al, rel=0.03)
    assert abs(intercept) < 0.01 * img.max()
    # Noise: Poisson, variance equals the expected counts.
    resid = s.tiltseries - s.expected
    hi = s.expected > 50
    assert np.mean(resid[hi] ** 2 / s.expected[hi]) == pytest.approx(1.0, rel=0.05)
    # Higher dose, relatively less noise.
    p2 = p.replace(haadf=p.haadf.replace(dose_e_per_A2=p.haadf.dose_e_per_A2 * 16))
    s2 = simulate(p2)
    rel1 = np.std(resid[hi] / s.expected[hi])
    rel2 = np.std((s2.tiltseries - s2.expected)[hi] / s2.expected[hi])
    assert rel1 / rel2 == pytest.approx(4.0, rel=0.1)


def test_detector_adds_its_dark_level_and_gaussian_noise(small_sim):
    """Counts = Poisson(λ) + dark level + N(0, σ²): unbiased about `expected` (which holds the
    dark level), variance λ + σ²."""
    s = small_sim
    haadf = simulate_params().haadf
    assert haadf.dark_level > 0 and haadf.detector_noise > 0
    resid = (s.tiltseries - s.expected).astype(np.float64)
    lam = s.expected - haadf.dark_level
    assert abs(resid.mean()) < 0.05 * haadf.detector_noise
    assert np.mean(resid**2) / np.mean(lam + haadf.detector_noise ** 2) == pytest.approx(1, rel=0.03)
    vacuum = lam < 1e-3  # no sample: dark level and detector noise alone
    assert vacuum.sum() > 1000
    assert s.tiltseries[vacuum].mean() == pytest.approx(haadf.dark_level, abs=0.5)
    assert s.tiltseries[vacuum].std() == pytest.approx(haadf.detector_noise, rel=0.05)


def test_drift_accumulates_along_the_acquisition_order():
    p = simulate_params(acquisition="dose-symmetric", size=32,
                        misalignment={"shift_px": 0.0, "drift_px": 1.0})
    s = simulate(p)
    shifts = np.asarray(s.truth["shifts_yx_px"])
    order = acquisition_order(s.angles, "dose-symmetric")
    step_in_time = np.var(np.diff(shifts[order], axis=0))
    step_in_angle = np.var(np.diff(shifts, axis=0))
    assert step_in_time < 0.75 * step_in_angle  # a random walk is smooth in recording order only


def test_tilt_range_has_a_missing_wedge():
    a = tilt_angles(TiltRange(-70, 70, 2))
    assert len(a) == 71 and a[0] == -70 and a[-1] == 70
    assert np.all(np.abs(a) <= 70)  # the wedge beyond ±70° is never measured
    b = tilt_angles(TiltRange(-60, 60, 3))
    assert len(b) == 41 and b[-1] == 60
    c = tilt_angles(TiltRange(-70, 70, 3))  # 70 is off the grid: stop at 68
    assert c[0] == -70 and c[-1] == 68


def test_dose_symmetric_order_starts_at_zero_and_alternates():
    a = tilt_angles(TiltRange(-6, 6, 2))
    order = acquisition_order(a, "dose-symmetric")
    assert a[order].tolist() == [0, 2, -2, 4, -4, 6, -6]
    assert acquisition_order(a, "sequential").tolist() == list(range(7))


def _centroid(img):
    y, x = np.mgrid[: img.shape[0], : img.shape[1]]
    w = np.clip(img, 0, None)
    return np.array([(w * y).sum(), (w * x).sum()]) / w.sum()


def test_recorded_misalignment_is_in_the_projections(small_sim):
    """Reproject the ground-truth density (an independent, coarse projector path), move it by the
    recorded misalignment and compare with the data: per-tilt centroids of the noise-free
    projections agree to a small fraction of a pixel, and undoing the misalignment aligns the noisy
    raw data with the reprojection."""
    s, t = small_sim, small_sim.truth
    n = s.labels.shape[0]
    c = geometry.centre(n)
    reproj = joseph.project(s.density, s.angles)
    errors, corr_true, corr_wrong = [], [], []
    for i in range(len(s.angles)):
        clean = s.expected[i] - s.expected[i].min()  # noise-free: geometry only
        predicted = geometry.aligned_to_raw(_centroid(reproj[i]) - c, t["axis_angle_deg"],
                                            t["axis_offset_px"], t["shifts_yx_px"][i]) + c
        errors.append(np.linalg.norm(_centroid(clean) - predicted))
        raw = s.tiltseries[i] - np.percentile(s.tiltseries[i], 2)
        for out, shift in ((corr_true, t["shifts_yx_px"][i]),
                           (corr_wrong, np.asarray(t["shifts_yx_px"][i]) + [1.0, -1.0])):
            back = geometry.aligned_from_raw(raw, t["axis_angle_deg"], t["axis_offset_px"], shift)
            out.append(np.corrcoef(back.ravel(), reproj[i].ravel())[0, 1])
    errors = np.array(errors)
    assert np.sqrt(np.mean(errors**2)) < 0.15, errors.max()
    assert errors.max() < 0.4
    assert min(corr_true) > 0.9
    assert np.mean(corr_true) > np.mean(corr_wrong) + 0.02
    # The misalignment is not trivial (shifts of a few px) and is gauge-fixed.
    sh = np.asarray(t["shifts_yx_px"])
    assert np.abs(sh).max() > 2
    offset, fixed = geometry.gauge_fix(s.angles, geometry.axis_frame(sh, t["axis_angle_deg"]))
    assert offset == pytest.approx(0, abs=1e-4)  # truth.json rounds shifts to 1e-5 px
    np.testing.assert_allclose(fixed, geometry.axis_frame(sh, t["axis_angle_deg"]), atol=1e-4)


def test_axis_angle_is_visible_in_the_data(small_sim):
    """Undoing the wrong axis angle decorrelates the high tilts from the reprojection."""
    s, t = small_sim, small_sim.truth
    i = len(s.angles) - 1
    reproj = joseph.project(s.density, s.angles[i:])[0]
    raw = s.tiltseries[i] - np.percentile(s.tiltseries[i], 2)

    def corr(angle, offset):
        back = geometry.aligned_from_raw(raw, angle, offset, t["shifts_yx_px"][i])
        return np.corrcoef(back.ravel(), reproj.ravel())[0, 1]

    best = corr(t["axis_angle_deg"], t["axis_offset_px"])
    assert best > corr(t["axis_angle_deg"] + 2.0, t["axis_offset_px"]) + 0.01
    assert best > corr(t["axis_angle_deg"], t["axis_offset_px"] + 1.5) + 0.01


def test_simulation_is_deterministic():
    p = simulate_params(size=32, pixel_size_nm=1.6)
    a, b = simulate(p), simulate(p)
    assert np.array_equal(a.tiltseries, b.tiltseries) and np.array_equal(a.labels, b.labels)
    c = simulate(p.replace(seed=1))
    assert not np.array_equal(a.tiltseries, c.tiltseries)


def test_partial_volume_blur_spreads_each_projection_and_keeps_its_total():
    """haadf.blur_nm blurs every projection (σ in nm) before binning: the same integrated signal,
    lower peaks, smoother images; 0 (the default) is no blur at all."""
    quiet = {"detector_noise": 0.0, "dark_level": 0.0, "intensity_jitter": 0.0}
    sharp = simulate(simulate_params(size=32, haadf=quiet))
    blurred = simulate(simulate_params(size=32, haadf={**quiet, "blur_nm": 1.6}))  # 2 px
    a, b = sharp.expected, blurred.expected
    # the same signal, but for what the blur carries past the edges of a small field of view
    np.testing.assert_allclose(b.sum(axis=(1, 2)), a.sum(axis=(1, 2)), rtol=0.05)
    assert b.max() < 0.8 * a.max()
    assert np.abs(np.diff(b, axis=-1)).mean() < 0.7 * np.abs(np.diff(a, axis=-1)).mean()
    assert np.array_equal(sharp.labels, blurred.labels)  # the object is the same
    assert simulate_params().haadf.blur_nm == 0.0

"""HAADF-STEM tilt-series acquisition of a synthetic catalyst, with a known misalignment.

Physics: HAADF intensity is incoherent and, for thin specimens, proportional to the projected
number density weighted by Z^γ with γ ≈ 1.7 (Rutherford-like scattering screened by the atom's
electrons; Pennycook & Jesson, Ultramicroscopy 1991; Hartel et al., Ultramicroscopy 1996). The
scattering per nm of each material is therefore density × Σ Z^γ over its formula unit, scaled so
that Pt scatters `pt_scatter_per_nm` of the beam per nm. Counts are Poisson in the dose per pixel,
plus Gaussian detector noise and a dark level. Projections are computed on a grid `oversample`
times finer than the detector, then misaligned (tilt-axis rotation and offset, per-tilt shifts)
and binned to detector pixels, so no reconstruction projector reproduces them exactly. An optional
Gaussian blur of each projection (`haadf.blur_nm`, σ) stands for the probe tail, drift within a
frame and residual alignment error: the partial-volume blur of real tomograms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core import geometry
from ..tomo import joseph
from . import needle, phantom
from .settings import SimulateSettings, TiltRange

AVOGADRO = 6.02214076e23
# Formula units: (density g/cm³, molar mass g/mol, atomic numbers per formula unit).
MATERIALS = {
    "alumina": (3.65, 101.96, (13, 13, 8, 8, 8)),   # γ-Al2O3 (defect spinel), density 3.6-3.7
    "pt": (21.45, 195.08, (78,)),
}


def scattering_per_nm(z_exponent: float, pt_scatter_per_nm: float) -> dict[str, float]:
    """Fraction of the beam scattered onto the HAADF detector per nm of each material."""
    def strength(name: str) -> float:
        rho, molar, zs = MATERIALS[name]
        units_per_nm3 = rho / molar * AVOGADRO * 1e-21
        return units_per_nm3 * sum(z ** z_exponent for z in zs)

    scale = pt_scatter_per_nm / strength("pt")
    return {name: strength(name) * scale for name in MATERIALS}


def tilt_angles(tilt: TiltRange) -> np.ndarray:
    """Angles (deg) from {start, stop, step}, stop included when it falls on the grid."""
    count = int(np.floor((tilt.stop - tilt.start) / tilt.step + 1e-6)) + 1
    return tilt.start + tilt.step * np.arange(count)


def acquisition_order(angles: np.ndarray, scheme: str) -> np.ndarray:
    """Indices of `angles` (sorted ascending) in the order they are recorded."""
    if scheme == "sequential":
        return np.arange(len(angles))
    if scheme == "dose-symmetric":
        # Hagen et al., J. Struct. Biol. 2017: start at 0°, alternate sides by increasing |angle|.
        return np.lexsort((-np.sign(angles), np.abs(angles)))
    raise ValueError(f"unknown acquisition scheme {scheme!r}")


@dataclass
class Simulation:
    tiltseries: np.ndarray   # (tilt, y, x) float32 detector counts, sorted by angle
    angles: np.ndarray       # degrees, ascending
    labels: np.ndarray       # (z, y, x) uint8 on the output grid, aligned frame
    density: np.ndarray      # (z, y, x) float32 scattering per nm, output grid
    expected: np.ndarray     # noise-free expected detector counts, same layout as tiltseries
    truth: dict


def simulate(params: SimulateSettings, progress: bool = False) -> Simulation:
    """Simulate a misaligned HAADF tilt series of a catalyst (or a needle) from the `simulate`
    config section."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(params.seed)
    over = params.oversample
    fine_nm = params.pixel_size_nm / over
    angles = tilt_angles(params.tilt)
    order = acquisition_order(angles, params.acquisition)
    if params.object == "needle":
        shifts = _misalignment(angles, order, params.misalignment, rng)
        obj = _needle(params, shifts, rng)
    else:
        obj = phantom.build_catalyst(params.size * over, fine_nm, params.support, params.pt, rng,
                                     progress)
        shifts = _misalignment(angles, order, params.misalignment, rng)
    t_phantom = time.perf_counter() - t0
    mu = scattering_per_nm(params.haadf.z_exponent, params.haadf.pt_scatter_per_nm)
    density_fine = np.array([0.0, mu["alumina"], mu["pt"]], dtype=np.float32)[obj.material]
    gain = 1.0 + rng.normal(0, params.haadf.intensity_jitter, len(angles))
    t1 = time.perf_counter()
    stack, expected = _acquire(density_fine, angles, shifts, gain, params, rng, progress)
    t_project = time.perf_counter() - t1
    field = params.size * over
    labels = phantom.downsample_labels(_in_field(obj.material, field), over)
    density = geometry.bin_mean(_in_field(density_fine, field), over).astype(np.float32)
    truth = _truth(params, obj, angles, order, shifts, gain, mu, labels, expected)
    truth["timings_s"] = {"phantom": round(t_phantom, 3), "projection": round(t_project, 3),
                          "tilts_per_s": round(len(angles) / t_project, 3)}
    return Simulation(stack, angles, labels, density, expected, truth)


def _needle(params: SimulateSettings, shifts: np.ndarray, rng: np.random.Generator) -> phantom.Phantom:
    """The needle on a canvas that covers the raw field after the misalignment (fine voxels)."""
    over, mis = params.oversample, params.misalignment
    field = params.size * over
    reach = over * (np.abs(shifts).max() + abs(mis.axis_offset_px)) + 2 * over
    canvas = needle.canvas_size(field, reach)
    width = needle.needle_width(field, canvas, params.needle)
    material = needle.needle_material((width, canvas, width), field, params.pixel_size_nm / over,
                                      params.needle, rng)
    return phantom.Phantom(material, params.pixel_size_nm / over)


def _in_field(volume: np.ndarray, field: int) -> np.ndarray:
    """The (field³) part of a canvas volume seen by the reconstruction: y cropped to the field,
    x and z padded with vacuum to it (centres kept). The catalyst's volume is already that."""
    nz, ny, nx = volume.shape
    if (nz, ny, nx) == (field,) * 3:
        return volume
    y0, pz, px = (ny - field) // 2, (field - nz) // 2, (field - nx) // 2
    out = np.zeros((field,) * 3, volume.dtype)
    out[pz:pz + nz, :, px:px + nx] = volume[:, y0:y0 + field]
    return out


def _misalignment(angles: np.ndarray, order: np.ndarray, mis, rng: np.random.Generator) -> np.ndarray:
    """Raw-frame per-tilt shifts: jitter plus a random-walk drift along the acquisition order,
    gauge-fixed (geometry.gauge_fix) so that they carry no object translation and no axis offset:
    the truth is then exactly what any alignment can recover, and labels stay in the object's
    frame."""
    drift = np.zeros((len(angles), 2))
    drift[order] = np.cumsum(rng.normal(0, mis.drift_px, (len(angles), 2)), axis=0)
    shifts = drift + rng.normal(0, mis.shift_px, (len(angles), 2))
    _, fixed = geometry.gauge_fix(angles, geometry.axis_frame(shifts, mis.axis_angle_deg))
    return geometry.raw_frame(fixed, mis.axis_angle_deg)


def _acquire(density_fine: np.ndarray, angles: np.ndarray, shifts: np.ndarray, gain: np.ndarray,
             params: SimulateSettings, rng: np.random.Generator,
             progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Detector counts and their noise-free expectation: each fine projection misaligned (on the
    square canvas of the volume's y extent, then cropped to the field), binned to detector
    pixels, scaled by the dose and the beam gain, then Poisson and detector noise."""
    over, mis, haadf = params.oversample, params.misalignment, params.haadf
    dose_per_px = haadf.dose_e_per_A2 * (params.pixel_size_nm * 10.0) ** 2
    stack = np.empty((len(angles), params.size, params.size), dtype=np.float32)
    expected = np.empty_like(stack)
    fine_nm = params.pixel_size_nm / over
    canvas, field = density_fine.shape[1], params.size * over
    crop = slice((canvas - field) // 2, (canvas + field) // 2)  # the detector on a larger canvas
    blur = haadf.blur_nm / fine_nm  # σ on the fine grid
    for i, fine in enumerate(joseph.projections(density_fine, angles, canvas, voxel_length=fine_nm,
                                                progress=progress)):
        if blur > 0:
            fine = ndimage.gaussian_filter(fine, blur, mode="nearest")
        fine = geometry.raw_from_aligned(fine, mis.axis_angle_deg, mis.axis_offset_px * over,
                                         shifts[i] * over, order=1)[crop, crop]
        lam = np.clip(geometry.bin_mean(fine, over), 0, None) * dose_per_px * gain[i]
        expected[i] = lam + haadf.dark_level
        stack[i] = rng.poisson(lam) + haadf.dark_level + rng.normal(0, haadf.detector_noise,
                                                                   lam.shape)
    return stack, expected


def _truth(params: SimulateSettings, obj: phantom.Phantom, angles: np.ndarray, order: np.ndarray,
           shifts: np.ndarray, gain: np.ndarray, mu: dict, labels: np.ndarray,
           expected: np.ndarray) -> dict:
    mis = params.misalignment
    return {
        "description": (
            "Ground truth of the simulated acquisition. Raw position r and aligned position p "
            "(y, x) relative to the image centre (n-1)/2 satisfy r = R(axis_angle)(p + (0, "
            "axis_offset)) + shift, see stemtomo.core.geometry. Shifts are gauge-fixed (in the "
            "axis frame: zero-mean y; x without constant, cos and sin components). Labels and "
            "density are (z, y, x) in the aligned frame: tilt axis along y through the centre, z "
            "along the beam at 0 deg."),
        "object": params.object,
        "pixel_size_nm": params.pixel_size_nm,
        "shape_zyx": list(labels.shape),
        "angles_deg": [float(a) for a in angles],
        "acquisition_index": [int(k) for k in np.argsort(order)],
        "acquisition": params.acquisition,
        "reference_tilt": int(np.argmin(np.abs(angles))),
        "shifts_yx_px": [[round(float(v), 5) for v in s] for s in shifts],
        "axis_angle_deg": float(mis.axis_angle_deg),
        "axis_offset_px": float(mis.axis_offset_px),
        "intensity_gain": [round(float(g), 6) for g in gain],
        "dose_per_pixel_e": params.haadf.dose_e_per_A2 * (params.pixel_size_nm * 10.0) ** 2,
        "scattering_per_nm": mu,
        "oversample": params.oversample,
        "class_fractions": phantom.class_fractions(labels),
        "n_crystallites": len(obj.crystallites),
        "crystallite_kinds": {k: sum(c.kind == k for c in obj.crystallites)
                              for k in ("platelet", "rod")},
        "pt_particles": obj.particles,
        "expected_counts_max": float(expected.max()),
    }

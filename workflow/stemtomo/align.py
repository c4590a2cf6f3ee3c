"""Marker-free alignment of HAADF-STEM tilt series.

Steps, all at a working binning (images ≤ 512 px wide) and reported in full-resolution pixels:

1. Tilt-axis angle φ from the common line: the profile of every projection along the tilt axis
   (the image integrated perpendicular to the axis) is the same for all tilts, whatever the tilt
   range, because it is the projection of the object onto the axis. φ minimises the spread of the
   profiles after 1D subpixel registration; that registration also gives the per-tilt shifts along
   the axis, without accumulating drift.
2. Shifts perpendicular to the axis by band-passed, tapered, subpixel cross-correlation outward from
   the lowest tilt, the higher-tilt image cosine-stretched about the axis (Guckenberger 1982; IMOD
   tiltxcorr), against either the neighbour or the cumulative sum of all aligned lower tilts.
3. Tilt-axis offset δ from data consistency: least-squares (CGLS) reconstructions of a few slabs
   fit the data best at the true axis position. Unlike 0°/180° symmetry methods this holds with a
   missing wedge. The offset is the weakly determined mode of the problem (see
   geometry.gauge_fix), so shift errors leak into it; projection matching then refines both.
4. Optional projection matching: reconstruct (OS-SIRT), reproject, re-register every tilt to its
   reprojection, repeat until the shifts move by less than the tolerance (Dengler 1989; Parkinson
   et al. 2012); then refine the axis angle by the reconstruction residual and re-register.

Shifts are gauge-fixed as described in stemtomo.geometry, so they compare directly with simulated
truth and place the reconstruction in the object's frame.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize
from tqdm import tqdm

from . import geometry
from .errors import InputError
from .importer import vacuum_level
from .projectors import make_projector
from .reconstruction import cgls, sirt
from .registration import bandpass, register, taper

log = logging.getLogger("stemtomo.align")


@dataclass
class Alignment:
    angles: np.ndarray             # degrees, as given
    axis_angle_deg: float
    axis_offset_px: float
    shifts_yx: np.ndarray          # raw-frame per-tilt shifts (full-resolution px), gauge-fixed
    quality: np.ndarray            # normalised cross-correlation of each tilt with its reference
    bad: np.ndarray                # bool per tilt: flagged as unusable
    binning: int
    method: str
    history: dict = field(default_factory=dict)

    def transform(self, i: int) -> tuple[float, float, np.ndarray]:
        return self.axis_angle_deg, self.axis_offset_px, self.shifts_yx[i]


# --- working copy ---------------------------------------------------------------------------------

def _power_of_two_binning(shape: tuple[int, ...], width: int) -> int:
    """Smallest power-of-two binning that brings the images to ≤ `width` px (as far as they divide)."""
    b = 1
    while max(shape[-2:]) / b > width and all(s % (2 * b) == 0 for s in shape[-2:]):
        b *= 2
    return b


def working_binning(shape: tuple[int, ...], setting: int | str) -> int:
    """The requested binning, or for 'auto' the binning that gives images ≤ 512 px. It must divide
    the image size: binning crops the remainder, which would move the image centre by half of it
    and bias the axis offset and the shifts by that much."""
    if setting == "auto":
        return _power_of_two_binning(shape, 512)
    b = int(setting)
    if any(s % b for s in shape[-2:]):
        raise InputError("align.binning", f"{b} does not divide the {shape[-2]}×{shape[-1]} px "
                         "images", "use auto, a divisor of both sizes, or crop the images at "
                         "import (import.crop) to a multiple of it")
    return b


def _prepare(stack: np.ndarray, binning: int) -> np.ndarray:
    work = np.stack([geometry.bin_mean(im.astype(np.float64), binning) for im in stack])
    return work - np.array([vacuum_level(im) for im in work])[:, None, None]


def _view(image: np.ndarray, angle_deg: float, translation_yx: np.ndarray, stretch: float = 1.0,
          order: int = 1, cval: float = 0.0) -> np.ndarray:
    """Sample a raw image in the aligned frame, optionally stretched by `stretch` along x.

    out(p) = raw(c + R(φ)·(diag(1, stretch)·(p − c) + t)), i.e. geometry.aligned_from_raw with the
    axis-frame translation t = R⁻¹s + (0, δ), plus the cosine stretch about the tilt axis.
    """
    c = np.array([geometry.centre(image.shape[0]), geometry.centre(image.shape[1])])
    rot = geometry.rotation_yx(angle_deg)
    m = rot @ np.diag([1.0, stretch])
    offset = c - m @ c + rot @ np.asarray(translation_yx, dtype=float)
    return ndimage.affine_transform(image, m, offset=offset, order=order, mode="constant",
                                    cval=cval, prefilter=order > 1)


def _rebin(stack: np.ndarray, width: int) -> np.ndarray:
    """A copy binned to ≤ `width` px (see _power_of_two_binning); the stack itself if no binning."""
    f = _power_of_two_binning(stack.shape, width)
    return stack if f == 1 else np.stack([geometry.bin_mean(im, f) for im in stack])


def has_signal(work: np.ndarray, ratio: float = 0.25) -> np.ndarray:
    """Tilts whose smoothed image varies at least `ratio` × the median: excludes blank frames
    (beam blanked, lost scan) that hold only detector noise."""
    spread = np.array([ndimage.gaussian_filter(im, 2.0).std() for im in work])
    return spread > ratio * np.median(spread)


# --- 1. tilt-axis angle ---------------------------------------------------------------------------

class _Profiles:
    """Projections of each image onto a direction, for pixels inside the inscribed disk (the
    same region for every direction; corners would add direction-dependent background)."""

    def __init__(self, work: np.ndarray) -> None:
        n, h, w = work.shape
        self.radius = int(min(h, w) // 2) - 1
        y, x = np.mgrid[:h, :w]
        y, x = y - geometry.centre(h), x - geometry.centre(w)
        inside = y**2 + x**2 <= self.radius**2
        self.y, self.x = y[inside], x[inside]
        self.values = work[:, inside]
        self.length = 2 * self.radius + 3

    def along_axis(self, angle_deg: float) -> np.ndarray:
        a = np.deg2rad(angle_deg)
        # Coordinate along the axis direction R(φ)·(1, 0) = (cos φ, −sin φ) in (y, x).
        v = self.y * np.cos(a) - self.x * np.sin(a) + self.radius + 1
        i0 = np.floor(v).astype(np.int64)
        f = v - i0
        out = np.empty((len(self.values), self.length))
        for k, vals in enumerate(self.values):
            out[k] = (np.bincount(i0, vals * (1 - f), self.length)
                      + np.bincount(i0 + 1, vals * f, self.length))
        return out


def _register_rows(reference: np.ndarray, rows: np.ndarray, upsample: int) -> np.ndarray:
    """Subpixel shifts of many 1D signals against one reference at once (vectorised form of
    registration.register for the profiles; same upsampled-DFT refinement)."""
    n, length = rows.shape
    spectra = np.conj(np.fft.fft(reference))[None, :] * np.fft.fft(rows, axis=1)
    cc = np.fft.ifft(spectra, axis=1).real
    peak = np.argmax(cc, axis=1).astype(float)
    peak = np.where(peak > length // 2, peak - length, peak)
    m = int(np.ceil(1.5 * upsample))
    pos = peak[:, None] + (np.arange(m) - m // 2)[None, :] / upsample        # (n, m)
    k = np.fft.fftfreq(length) * length
    kernel = np.exp(2j * np.pi * k[None, :, None] * pos[:, None, :] / length)  # (n, L, m)
    local = np.einsum("nk,nkm->nm", spectra, kernel).real
    return pos[np.arange(n), np.argmax(local, axis=1)]


def _shift_rows(rows: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    phase = np.exp(-2j * np.pi * np.fft.fftfreq(rows.shape[1])[None, :] * shifts[:, None])
    return np.fft.ifft(np.fft.fft(rows, axis=1) * phase, axis=1).real


def align_profiles(profiles: np.ndarray, rounds: int = 3) -> tuple[float, np.ndarray]:
    """Register 1D profiles to their mean; return (relative spread, shift of each profile)."""
    p = profiles / np.maximum(np.abs(profiles.sum(axis=1, keepdims=True)), 1e-12)
    p = p - p.mean(axis=1, keepdims=True)
    shifts = np.zeros(len(p))
    for _ in range(rounds):
        mean = _shift_rows(p, -shifts).mean(axis=0)
        shifts = _register_rows(mean, p, upsample=100)
        shifts -= shifts.mean()
    aligned = _shift_rows(p, -shifts)
    mean = aligned.mean(axis=0)
    spread = float(np.sum((aligned - mean) ** 2) / (len(p) * np.sum(mean**2)))
    return spread, shifts


def _magnitude_spread(profiles: np.ndarray) -> float:
    """Shift-invariant version of the profile spread (Fourier magnitudes), for the coarse search."""
    p = profiles / np.maximum(np.abs(profiles.sum(axis=1, keepdims=True)), 1e-12)
    mag = np.abs(np.fft.rfft(p - p.mean(axis=1, keepdims=True), axis=1))
    return float(np.sum((mag - mag.mean(axis=0)) ** 2) / (len(p) * np.sum(mag.mean(axis=0) ** 2)))


def estimate_axis_angle(work: np.ndarray, guess: float, search: float,
                        usable: np.ndarray) -> tuple[float, np.ndarray, dict]:
    """φ minimising the spread of the along-axis profiles; also the along-axis shifts (work px)."""
    profiles = _Profiles(work[usable])

    def cost(a: float) -> float:
        return align_profiles(profiles.along_axis(a), rounds=2)[0]

    # Coarse: shift-invariant spread every 2° on images ≤ 128 px; fine: registered spread around
    # the best at the working binning.
    small = _Profiles(_rebin(work[usable], 128))
    grid = guess + np.arange(-search, search + 1e-9, 2.0)
    coarse = np.array([_magnitude_spread(small.along_axis(a)) for a in grid])
    best = grid[int(np.argmin(coarse))]
    res = optimize.minimize_scalar(cost, bounds=(best - 2.5, best + 2.5), method="bounded",
                                   options={"xatol": 0.002})
    angle = float(res.x)
    spread, y_shifts = align_profiles(profiles.along_axis(angle))
    shifts = np.zeros(len(work))
    shifts[usable] = y_shifts
    return angle, shifts, {"grid_deg": grid.tolist(), "grid_cost": coarse.tolist(),
                           "spread": spread, "evaluations": int(res.nfev) + len(grid)}


# --- 2. shifts perpendicular to the axis ----------------------------------------------------------

def outward_order(angles: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """Reference (smallest |angle|) and the (previous, next) pairs walking outward on both sides."""
    order = np.argsort(angles)
    ref_pos = int(np.argmin(np.abs(angles[order])))
    pairs = [(int(order[k - 1]), int(order[k])) for k in range(ref_pos + 1, len(order))]
    pairs += [(int(order[k + 1]), int(order[k])) for k in range(ref_pos - 1, -1, -1)]
    return int(order[ref_pos]), pairs


class _Correlator:
    def __init__(self, shape: tuple[int, int], settings: dict) -> None:
        self.filt = bandpass(shape, settings["bandpass"][0], settings["bandpass"][1])
        self.window = taper(shape, settings["taper"])
        self.upsample = settings["upsample"]
        self.max_shift = settings["max_shift"] * min(shape)

    def __call__(self, reference: np.ndarray, moving: np.ndarray):
        return register(reference, moving, self.upsample, self.filt, self.window, self.max_shift)


def translation_chain(work: np.ndarray, angles: np.ndarray, axis_angle: float,
                      translations: np.ndarray, settings: dict, usable: np.ndarray,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axis-frame x translations by stretched cross-correlation outward from the lowest tilt.

    `translations` holds the current (n, 2) axis-frame estimate (y from the profiles, x including
    the current axis offset, which sets the stretch centre). Returns (translations, quality, bad).
    """
    t = translations.copy()
    corr = _Correlator(work.shape[1:], settings)
    ref, pairs = outward_order(angles)
    cos = np.cos(np.deg2rad(angles))
    quality = np.full(len(angles), np.nan)  # stays NaN where a tilt has no signal to correlate
    bad = ~usable.copy()
    last_good = {1: ref, -1: ref}
    members = {1: [ref], -1: [ref]}  # aligned tilts per side, for the cumulative reference
    for _prev, b in tqdm(pairs, desc="align", unit="tilt", disable=not progress):
        side = 1 if angles[b] > angles[ref] else -1
        a = last_good[side]  # skip over flagged tilts
        t[b, 1] = t[a, 1]  # start from the neighbour's translation
        if bad[b]:
            continue
        k_b = cos[b] / cos[a]
        moving = _view(work[b], axis_angle, t[b], k_b)
        if settings["reference"] == "cumulative":
            reference = sum(_view(work[j], axis_angle, t[j], cos[j] / cos[a])
                            for j in members[side][-settings["cumulative_window"]:])
        else:
            reference = _view(work[a], axis_angle, t[a])
        r = corr(reference, moving)
        t[b, 1] += r.shift[1] * k_b
        quality[b] = r.quality
        good_q = quality[[j for j in members[1] + members[-1] if j != ref]]
        if len(good_q) >= 3 and r.quality < settings["bad_quality"] * np.median(good_q):
            bad[b] = True
            t[b, 1] = t[a, 1]
            continue
        last_good[side] = b
        members[side].append(b)
    # The reference tilt's quality: its correlation with its first good neighbour.
    quality[ref] = max((quality[j] for j in members[1][1:2] + members[-1][1:2]), default=1.0)
    return t, quality, bad


def integer_chain(stack: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Baseline: plain integer-pixel cross-correlation between neighbours, chained outward from
    the lowest tilt, no filtering, stretching or rotation (as tomviz's default shift alignment).
    Returns raw-frame shifts (n, 2) relative to the reference tilt."""
    ref, pairs = outward_order(np.asarray(angles))
    shifts = np.zeros((len(angles), 2))
    for a, b in pairs:
        fa = np.fft.fft2(stack[a] - stack[a].mean())
        fb = np.fft.fft2(stack[b] - stack[b].mean())
        cc = np.fft.ifft2(np.conj(fa) * fb).real
        peak = np.array(np.unravel_index(int(np.argmax(cc)), cc.shape), dtype=float)
        shape = np.array(cc.shape)
        shifts[b] = shifts[a] + np.where(peak > shape // 2, peak - shape, peak)
    return shifts - shifts[ref]


# --- 3. tilt-axis offset --------------------------------------------------------------------------

def _offset_misfits(sino: np.ndarray, angles: np.ndarray, deltas: np.ndarray,
                    settings: dict) -> np.ndarray:
    """Relative CGLS data misfit of the sinograms (tilt, rows, x) shifted by each δ in x.

    All candidates are reconstructed in one batch: they are stacked as extra slices."""
    t, rows, nx = sino.shape
    flat = sino.reshape(-1, nx)
    batch = np.concatenate([_shift_rows(flat, np.full(len(flat), -d)).reshape(t, rows, nx)
                            for d in deltas], axis=1)
    projector = make_projector(settings["projector"], angles, (nx, batch.shape[1], nx))
    rec = cgls(projector, batch, settings["offset_iterations"])
    diff = (batch - projector.forward(rec.volume)).reshape(t, len(deltas), rows, nx)
    norm = (batch.reshape(t, len(deltas), rows, nx) ** 2).sum(axis=(0, 2, 3))
    return (diff**2).sum(axis=(0, 2, 3)) / norm


def estimate_offset(work: np.ndarray, angles: np.ndarray, axis_angle: float,
                    translations: np.ndarray, usable: np.ndarray, settings: dict,
                    search: float) -> tuple[float, dict]:
    """Further axis offset (work px) at which CGLS reconstructions of a few slabs fit the data
    best: a coarse 1 px grid over ±search, then a 0.25 px grid and a parabola at the minimum."""
    aligned = np.stack([_view(work[i], axis_angle, translations[i]) for i in np.flatnonzero(usable)])
    # The reconstructions run on ~128 px wide sinograms: offsets scale with the extra binning.
    small = _rebin(aligned, 128)
    f = aligned.shape[2] // small.shape[2]
    aligned, search = small, search / f
    ang = angles[usable]
    profile = aligned.sum(axis=(0, 2))
    rows = np.flatnonzero(profile > 0.05 * profile.max())
    # Sum the rows into a few slabs: slab sums are still parallel projections (of the slab), and
    # summing raises the signal-to-noise of the misfit without more reconstructions.
    groups = np.array_split(rows, min(settings["offset_slices"], len(rows)))
    sino = np.stack([aligned[:, g, :].sum(axis=1) for g in groups], axis=1)
    info: dict = {"slabs": [[int(g[0]), int(g[-1])] for g in groups]}
    best = 0.0
    if search >= 1.0:
        grid = np.arange(-np.floor(search), np.floor(search) + 1e-9, 1.0)
        costs = _offset_misfits(sino, ang, grid, settings)
        best = float(grid[int(np.argmin(costs))])
        info.update(grid_px=grid.tolist(), grid_misfit=costs.tolist())
    fine = best + np.arange(-1.0, 1.0 + 1e-9, 0.25)
    costs = _offset_misfits(sino, ang, fine, settings)
    k = int(np.clip(np.argmin(costs), 2, len(fine) - 3))
    a, b, _ = np.polyfit(fine[k - 2:k + 3], costs[k - 2:k + 3], 2)
    delta = float(np.clip(-b / (2 * a), fine[k - 2], fine[k + 2])) if a > 0 else float(fine[k])
    info.update(fine_px=fine.tolist(), fine_misfit=costs.tolist(), extra_binning=f)
    return delta * f, info


# --- 4. projection matching -----------------------------------------------------------------------

def projection_matching(work: np.ndarray, angles: np.ndarray, axis_angle: float,
                        translations: np.ndarray, usable: np.ndarray, settings: dict,
                        progress: bool = False, volume: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, list[dict], np.ndarray]:
    """Refine axis-frame translations against reprojections of SIRT reconstructions.

    The reconstruction is warm-started from the previous iteration. The axis offset, the weakly
    determined constant mode (see geometry.gauge_fix), converges geometrically; once three
    estimates show a steady ratio it is extrapolated to its limit (Aitken's Δ²).
    """
    idx = np.flatnonzero(usable)
    n, h, w = work.shape
    projector = make_projector(settings["projector"], angles[idx], (w, h, w))
    corr = _Correlator((h, w), dict(settings, max_shift=0.05))
    tol = settings["pm_tolerance_px"] / settings["_binning"]
    t = translations.copy()
    quality = np.zeros(n)
    history: list[dict] = []
    offsets = [geometry.gauge_fix(angles[idx], t[idx])[0]]
    for it in range(settings["pm_iterations"]):
        aligned = np.stack([_view(work[i], axis_angle, t[i], order=3) for i in idx])
        rec = sirt(projector, aligned, settings["pm_sirt_iterations"], x0=volume,
                   subsets=settings["pm_subsets"], progress=progress)
        volume = rec.volume
        reproj = projector.forward(volume)
        delta = np.zeros((n, 2))
        for k, i in enumerate(idx):
            r = corr(reproj[k], aligned[k])
            delta[i], quality[i] = r.shift, r.quality
        offset, shifts = geometry.gauge_fix(angles[idx], t[idx] + delta[idx])
        offsets.append(offset)
        jumped, remaining = False, np.inf  # unknown until a ratio is measured
        if len(offsets) >= 3:
            d1, d2 = offsets[-1] - offsets[-2], offsets[-2] - offsets[-3]
            ratio = d1 / d2 if d2 != 0 else 0.0
            remaining = abs(d1) * max(ratio, 0.0) / (1 - min(max(ratio, 0.0), 0.95))
            if 0.2 < ratio < 0.95:
                if remaining > tol:
                    offset += float(np.clip(d1 * ratio / (1 - ratio), -2.0, 2.0))
                    offsets = [offset]  # the ratio is re-measured after a jump
                    jumped = True
        new = t.copy()
        new[idx] = shifts + [0.0, offset]
        rms = float(np.sqrt(np.mean((new[idx] - t[idx]) ** 2)))
        t = new
        history.append({"iteration": it + 1, "offset_px": offset * settings["_binning"],
                        "rms_change_px": rms * settings["_binning"], "extrapolated": jumped,
                        "residual": rec.residuals[-1]})
        log.info("projection matching %d: rms shift change %.3f px, offset %.3f px%s, residual %.4f",
                 it + 1, rms * settings["_binning"], offset * settings["_binning"],
                 " (extrapolated)" if jumped else "", rec.residuals[-1])
        if it >= 2 and rms < tol and remaining < tol and not jumped:
            break
    return t, quality, history, volume


def refine_axis_angle(work: np.ndarray, angles: np.ndarray, axis_angle: float,
                      translations: np.ndarray, usable: np.ndarray, settings: dict,
                      half_width: float = 0.6, step: float = 0.15) -> tuple[float, dict]:
    """Reconstruction-based refinement of the tilt-axis angle: the data residual of a fresh OS-SIRT
    reconstruction is smallest at the true angle; parabola through the grid. (Fresh, because a
    volume reconstructed at the old angle would favour the old angle.)"""
    idx = np.flatnonzero(usable)
    n, h, w = work.shape
    projector = make_projector(settings["projector"], angles[idx], (w, h, w))
    grid = axis_angle + np.arange(-half_width, half_width + 1e-9, step)
    residuals = []
    for a in grid:
        aligned = np.stack([_view(work[i], a, translations[i], order=3) for i in idx])
        rec = sirt(projector, aligned, 2 * settings["pm_sirt_iterations"],
                   subsets=settings["pm_subsets"])
        residuals.append(rec.residuals[-1])
    # A parabola through the whole grid averages out the residual's noise near the minimum.
    c2, c1, _ = np.polyfit(grid - axis_angle, residuals, 2)
    best = axis_angle + (-c1 / (2 * c2) if c2 > 0 else grid[int(np.argmin(residuals))] - axis_angle)
    best = float(np.clip(best, grid[0], grid[-1]))
    return best, {"grid_deg": grid.tolist(), "residual": [float(r) for r in residuals]}


# --- the stage ------------------------------------------------------------------------------------

def align_tiltseries(stack: np.ndarray, angles: np.ndarray, settings: dict,
                     gpu: bool = False, progress: bool = False) -> Alignment:
    """Estimate the alignment of a (tilt, y, x) series; `settings` is the `align` config section."""
    t0 = time.perf_counter()
    angles = np.asarray(angles, dtype=float)
    b = working_binning(stack.shape, settings["binning"])
    work = _prepare(stack, b)
    usable = has_signal(work)
    if usable.sum() < 3:
        raise ValueError("fewer than 3 tilts carry signal; nothing to align")
    timings = {}

    if settings["axis_angle"] == "auto":
        phi, y_shift, phi_info = estimate_axis_angle(work, settings["axis_angle_guess"],
                                                     settings["axis_angle_search"], usable)
    else:
        phi = float(settings["axis_angle"])
        _, y_shift = align_profiles(_Profiles(work).along_axis(phi))
        phi_info = {"fixed": True}
    timings["axis_angle"] = time.perf_counter() - t0
    log.info("tilt-axis angle %.3f°", phi)

    t = np.zeros((len(angles), 2))
    t[:, 0] = y_shift
    fixed_offset = settings["axis_offset"] != "auto"
    offset = float(settings["axis_offset"]) / b if fixed_offset else 0.0
    offset_info: dict = {}
    # Two passes: the offset sets the stretch centre of the chain, the chain feeds the offset.
    for _ in range(2):
        t[:, 1] = offset
        t, quality, bad = translation_chain(work, angles, phi, t, settings, usable, progress)
        ok = ~bad
        _, fixed = geometry.gauge_fix(angles[ok], t[ok])
        t[ok] = fixed + [0.0, offset]
        if not fixed_offset:
            # Full search once; the second pass only refines around the first estimate.
            search = settings["offset_search_px"] / b if not offset_info else 0.0
            delta, offset_info = estimate_offset(work, angles, phi, t, ok, settings, search)
            offset += delta
            t[ok, 1] += delta
    timings["translations_and_offset"] = time.perf_counter() - t0 - timings["axis_angle"]

    pm = settings["projection_matching"]
    use_pm = pm is True or (pm == "auto" and gpu)
    pm_history: list[dict] = []
    refine_info: dict = {}
    if use_pm:
        pm_settings = dict(settings, _binning=b)
        t, pm_quality, pm_history, volume = projection_matching(
            work, angles, phi, t, ~bad, pm_settings, progress)
        if settings["axis_angle"] == "auto":
            phi, refine_info = refine_axis_angle(work, angles, phi, t, ~bad, settings)
            log.info("tilt-axis angle refined to %.3f° by reconstruction residual", phi)
            # Re-register the shifts at the refined angle.
            t, pm_quality, more, _ = projection_matching(
                work, angles, phi, t, ~bad, dict(pm_settings, pm_iterations=3), progress, volume)
            pm_history += [dict(h, iteration=len(pm_history) + h["iteration"]) for h in more]
        quality = np.where(bad, quality, pm_quality)
    timings["projection_matching"] = time.perf_counter() - t0 - sum(timings.values())

    offset, shifts = geometry.gauge_fix(angles[~bad], t[~bad])
    axis_t = np.zeros_like(t)
    axis_t[~bad] = shifts
    order = np.argsort(angles[~bad])  # np.interp needs increasing x (series may descend)
    for k in range(2):  # flagged tilts get shifts interpolated from their good neighbours
        axis_t[bad, k] = np.interp(angles[bad], angles[~bad][order], shifts[order, k])
    raw_shifts = geometry.raw_frame(axis_t, phi) * b
    for i in np.flatnonzero(bad):
        log.warning("tilt %d (%.1f°) flagged as bad: %s", i, angles[i],
                    "no signal" if not usable[i] else f"correlation {quality[i]:.2f}")
    method = ("common-line axis angle" if settings["axis_angle"] == "auto" else "fixed axis angle")
    method += f" + {settings['reference']} stretched cross-correlation"
    method += " + CGLS-consistency offset" if not fixed_offset else " + fixed offset"
    method += " + projection matching" if use_pm else ""
    timings["total"] = time.perf_counter() - t0
    return Alignment(angles, phi, offset * b, raw_shifts, quality, bad, b, method, {
        "axis_angle_search": phi_info, "axis_angle_refinement": refine_info,
        "offset_search": offset_info,
        "projection_matching": pm_history, "timings_s": {k: round(v, 3) for k, v in timings.items()},
    })


def apply_alignment(stack: np.ndarray, alignment: Alignment, keep: np.ndarray | None = None,
                    threads: int = 1) -> tuple[np.ndarray, list[float]]:
    """Resample the original images once (cubic spline); pixels from outside the image are filled
    with that image's vacuum level. Returns the aligned stack and the fill values. SciPy's
    resampling releases the GIL, so `threads` images are resampled at once."""
    from concurrent.futures import ThreadPoolExecutor

    keep = np.ones(len(stack), bool) if keep is None else keep

    def one(i: int) -> tuple[np.ndarray, float]:
        fill = vacuum_level(stack[i])
        phi, delta, shift = alignment.transform(i)
        return geometry.aligned_from_raw(stack[i].astype(np.float32), phi, delta, shift,
                                         order=3, cval=fill), fill

    with ThreadPoolExecutor(max(1, threads)) as pool:
        results = list(pool.map(one, np.flatnonzero(keep)))
    return np.stack([r[0] for r in results]).astype(np.float32), [r[1] for r in results]

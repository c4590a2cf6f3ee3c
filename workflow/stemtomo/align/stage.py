"""The align stage: marker-free alignment of a HAADF-STEM tilt series.

Steps, all at a working binning (images ≤ 512 px wide) and reported in full-resolution pixels:
1. tilt-axis angle φ from the common line (`axis`), with the shifts along the axis;
2. shifts perpendicular to the axis by stretched cross-correlation outward from the lowest tilt
   (`translations`);
3. tilt-axis offset δ from data consistency of CGLS reconstructions (`offset`);
4. optional projection matching, then refinement of φ by the reconstruction residual and a short
   re-registration (`matching`).

Shifts are gauge-fixed as described in stemtomo.core.geometry, so they compare directly with
simulated truth and place the reconstruction in the object's frame.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..core import geometry
from ..core.intensity import vacuum_level
from .axis import estimate_axis_angle, profile_shifts
from .matching import projection_matching, refine_axis_angle
from .offset import estimate_offset
from .settings import AlignSettings
from .translations import Correlator, translation_chain
from .working import has_signal, prepare, working_binning

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


@dataclass
class _Estimate:
    """The working state of one alignment (work px, axis frame)."""
    work: np.ndarray
    angles: np.ndarray
    usable: np.ndarray
    binning: int
    phi: float = 0.0
    t: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    quality: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bad: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    history: dict = field(default_factory=dict)


def align_tiltseries(stack: np.ndarray, angles: np.ndarray, settings: AlignSettings,
                     gpu: bool = False, progress: bool = False) -> Alignment:
    """Estimate the alignment of a (tilt, y, x) series."""
    t0 = time.perf_counter()
    b = working_binning(stack.shape, settings.binning)
    work = prepare(stack, b)
    est = _Estimate(work, np.asarray(angles, dtype=float), has_signal(work), b)
    if est.usable.sum() < 3:
        raise ValueError("fewer than 3 tilts carry signal; nothing to align")
    timings = {}
    _axis_angle(est, settings)
    timings["axis_angle"] = time.perf_counter() - t0
    _translations_and_offset(est, settings, progress)
    timings["translations_and_offset"] = time.perf_counter() - t0 - timings["axis_angle"]
    use_pm = settings.use_projection_matching(gpu)
    if use_pm:
        _projection_matching(est, settings, progress)
    timings["projection_matching"] = time.perf_counter() - t0 - sum(timings.values())
    result = _result(est, _method(settings, use_pm))
    timings["total"] = time.perf_counter() - t0
    result.history["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    return result


def _axis_angle(est: _Estimate, s: AlignSettings) -> None:
    """φ (measured or given) and the along-axis shifts."""
    est.t = np.zeros((len(est.angles), 2))
    if s.auto_axis_angle:
        est.phi, est.t[:, 0], est.history["axis_angle_search"] = estimate_axis_angle(
            est.work, s.axis_angle_guess, s.axis_angle_search, est.usable)
    else:
        est.phi = float(s.axis_angle)
        est.t[:, 0] = profile_shifts(est.work, est.phi)
        est.history["axis_angle_search"] = {"fixed": True}
    log.info("tilt-axis angle %.3f°", est.phi)


def _translations_and_offset(est: _Estimate, s: AlignSettings, progress: bool) -> None:
    """Two passes: the offset sets the stretch centre of the chain, the chain feeds the offset."""
    offset = 0.0 if s.auto_offset else float(s.axis_offset) / est.binning
    correlate = Correlator(est.work.shape[1:], s.bandpass, s.taper, s.upsample, s.max_shift)
    est.history["offset_search"] = {}
    for _ in range(2):
        est.t[:, 1] = offset
        est.t, est.quality, est.bad = translation_chain(
            est.work, est.angles, est.phi, est.t, est.usable, correlate, reference=s.reference,
            window=s.cumulative_window, bad_quality=s.bad_quality, progress=progress)
        ok = ~est.bad
        _, fixed = geometry.gauge_fix(est.angles[ok], est.t[ok])
        est.t[ok] = fixed + [0.0, offset]
        if s.auto_offset:
            # Full search once; the second pass only refines around the first estimate.
            search = s.offset_search_px / est.binning if not est.history["offset_search"] else 0.0
            delta, est.history["offset_search"] = estimate_offset(
                est.work, est.angles, est.phi, est.t, ok, search, slabs=s.offset_slices,
                iterations=s.offset_iterations, projector=s.projector)
            offset += delta
            est.t[ok, 1] += delta


def _projection_matching(est: _Estimate, s: AlignSettings, progress: bool) -> None:
    """Projection matching; with a measured φ, then its refinement and three more rounds."""
    ok = ~est.bad
    est.t, quality, history, volume = projection_matching(
        est.work, est.angles, est.phi, est.t, ok, s, est.binning, progress=progress)
    est.history["axis_angle_refinement"] = {}
    if s.auto_axis_angle:
        est.phi, est.history["axis_angle_refinement"] = refine_axis_angle(
            est.work, est.angles, est.phi, est.t, ok, s)
        log.info("tilt-axis angle refined to %.3f° by reconstruction residual", est.phi)
        # Re-register the shifts at the refined angle.
        est.t, quality, more, _ = projection_matching(
            est.work, est.angles, est.phi, est.t, ok, s, est.binning, iterations=3,
            progress=progress, volume=volume)
        history += [dict(h, iteration=len(history) + h["iteration"]) for h in more]
    est.quality = np.where(est.bad, est.quality, quality)
    est.history["projection_matching"] = history


def _result(est: _Estimate, method: str) -> Alignment:
    """Gauge-fixed raw-frame shifts at full resolution; flagged tilts get shifts interpolated from
    their good neighbours."""
    bad, angles = est.bad, est.angles
    offset, shifts = geometry.gauge_fix(angles[~bad], est.t[~bad])
    axis_t = np.zeros_like(est.t)
    axis_t[~bad] = shifts
    order = np.argsort(angles[~bad])  # np.interp needs increasing x (series may descend)
    for k in range(2):
        axis_t[bad, k] = np.interp(angles[bad], angles[~bad][order], shifts[order, k])
    for i in np.flatnonzero(bad):
        log.warning("tilt %d (%.1f°) flagged as bad: %s", i, angles[i],
                    "no signal" if not est.usable[i] else f"correlation {est.quality[i]:.2f}")
    history = {"axis_angle_refinement": {}, "projection_matching": [], **est.history}
    return Alignment(angles, est.phi, offset * est.binning,
                     geometry.raw_frame(axis_t, est.phi) * est.binning, est.quality, bad,
                     est.binning, method, history)


def _method(s: AlignSettings, projection_matching: bool) -> str:
    method = "common-line axis angle" if s.auto_axis_angle else "fixed axis angle"
    method += f" + {s.reference} stretched cross-correlation"
    method += " + CGLS-consistency offset" if s.auto_offset else " + fixed offset"
    return method + (" + projection matching" if projection_matching else "")


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


def alignment_record(result: Alignment, keep: np.ndarray, fills: list[float],
                     pixel_size_nm: float | None) -> dict:
    """alignment.json: geometry, per-tilt shifts and flags, and how they were found."""
    h = result.history
    return {
        "method": result.method,
        "axis_angle_deg": result.axis_angle_deg,
        "axis_offset_px": result.axis_offset_px,
        "working_binning": result.binning,
        "pixel_size_nm": pixel_size_nm,
        "convention": "raw r = R(axis_angle)(p + (0, axis_offset)) + shift, (y, x) from the image "
                      "centre; shifts gauge-fixed (see stemtomo.core.geometry)",
        "tilts": [{"index": i, "angle": float(a), "shift_y": float(s[0]), "shift_x": float(s[1]),
                   "quality": float(q) if np.isfinite(q) else None, "bad": bool(b), "kept": bool(k)}
                  for i, (a, s, q, b, k) in enumerate(zip(result.angles, result.shifts_yx,
                                                          result.quality, result.bad, keep,
                                                          strict=True))],
        "fill_values": fills,
        "iterations": len(h["projection_matching"]),
        "residuals": h["projection_matching"],
        "axis_angle_search": h["axis_angle_search"],
        "offset_search": h["offset_search"],
        "timings_s": h["timings_s"],
    }

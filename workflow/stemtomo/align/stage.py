"""The align stage: marker-free alignment of a HAADF-STEM tilt series.

Steps, all at a working binning (images ≤ 512 px wide) and reported in full-resolution pixels:
0. a coarse pass (`coarse`): tilts that resemble neither neighbour are set aside, and a series
   with large shifts is pre-centred, so that an object running out of the field is compared
   with itself;
1. tilt-axis angle φ (`angle`): every prominent minimum of the common-line cost over 180° is a
   candidate, decided by the data (`candidates`); then the fine angle from the common line
   (`axis`), or from centres of mass where the object stays in view (`com`); the profiles give
   the shifts along the axis;
2. shifts perpendicular to the axis by stretched cross-correlation outward from the lowest tilt
   (`translations`);
3. tilt-axis offset δ from data consistency of CGLS reconstructions (`offset`);
4. optional projection matching, then refinement of φ by the reconstruction residual and a short
   re-registration (`matching`);
5. the self-consistency of the raw and the aligned series (`consistency`).

Shifts are gauge-fixed as described in stemtomo.core.geometry, so they compare directly with
simulated truth and place the reconstruction in the object's frame.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..core import geometry
from ..core.errors import InputError
from ..core.intensity import vacuum_level
from .angle import centre_of_mass_angle, search_axis
from .axis import profile_shifts
from .coarse import CoarsePass, screen_and_precentre
from .consistency import self_consistency
from .matching import projection_matching, refine_axis_angle
from .offset import estimate_offset
from .settings import AlignSettings
from .translations import Correlator, translation_chain
from .working import has_signal, prepare, working_binning

log = logging.getLogger("stemtomo.align")
# A common-line minimum whose cost doubles within this angle (deg) fixes the angle better than
# centres of mass (synthetic catalysts: 0.4-0.8°, layered needles along the axis: 1.3-3.8°).
SHARP_COMMON_LINE_DEG = 1.0


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
    """The working state of one alignment (work px, axis frame of the pre-centred copy)."""
    work: np.ndarray               # pre-centred working copy (the prepared images if not needed)
    raw: np.ndarray                # the prepared images
    angles: np.ndarray
    usable: np.ndarray
    binning: int
    coarse: CoarsePass
    phi: float = 0.0
    t: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    quality: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bad: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    history: dict = field(default_factory=dict)


def align_tiltseries(stack: np.ndarray, angles: np.ndarray, settings: AlignSettings,
                     gpu: bool = False, progress: bool = False, source: str = "tilt series") -> Alignment:
    """Estimate the alignment of a (tilt, y, x) series; `source` names it in error messages."""
    t0 = time.perf_counter()
    s = settings
    b = working_binning(stack.shape, s.binning)
    raw = prepare(stack, b)
    angles = np.asarray(angles, dtype=float)
    usable = has_signal(raw)
    if usable.sum() < 3:
        raise ValueError("fewer than 3 tilts carry signal; nothing to align")
    work, coarse = screen_and_precentre(raw, angles, usable, s.bandpass, s.taper, s.bad_quality)
    est = _Estimate(work, raw, angles, usable & ~coarse.outliers, b, coarse)
    est.history["coarse"] = _coarse_record(coarse, b)
    timings = {}
    _axis_angle(est, s)
    timings["axis_angle"] = time.perf_counter() - t0
    _translations_and_offset(est, s, progress)
    _check_flagged(est, s, source)
    if s.auto_axis_angle:
        _fine_angle(est, s, progress)
    timings["translations_and_offset"] = time.perf_counter() - t0 - timings["axis_angle"]
    use_pm = s.use_projection_matching(gpu)
    if use_pm:
        _projection_matching(est, s, progress)
    timings["projection_matching"] = time.perf_counter() - t0 - sum(timings.values())
    result = _result(est, _method(s, use_pm))
    t1 = time.perf_counter()
    result.history["self_consistency"] = self_consistency(
        raw, angles, ~result.bad, result.axis_angle_deg,
        geometry.axis_frame(result.shifts_yx / b, result.axis_angle_deg) + [0.0, result.axis_offset_px / b],
        b, s.projector)
    log.info("self-consistency (%s): raw %.4f, aligned %.4f", result.history["self_consistency"]["measure"],
             result.history["self_consistency"]["raw"], result.history["self_consistency"]["aligned"])
    timings["self_consistency"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    result.history["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    return result


def _coarse_record(coarse: CoarsePass, binning: int) -> dict:
    return {"precentred": coarse.precentred, "max_shift_px": round(coarse.max_shift_px * binning, 2),
            "common_radius_px": round(coarse.radius * binning, 1),
            "screened_tilts": np.flatnonzero(coarse.outliers).tolist(),
            "neighbour_quality": coarse.neighbour_quality}


def _axis_angle(est: _Estimate, s: AlignSettings) -> None:
    """φ (measured or given) and the along-axis shifts."""
    est.t = np.zeros((len(est.angles), 2))
    if s.auto_axis_angle:
        est.phi, est.history["axis_angle_search"] = search_axis(
            est.work, est.angles, est.usable, s, est.binning, est.coarse.radius,
            est.coarse.precentred)
    else:
        est.phi = float(s.axis_angle)
        est.history["axis_angle_search"] = {"fixed": True}
    est.t[:, 0] = profile_shifts(est.work, est.phi, est.usable, est.coarse.radius)[1]
    log.info("tilt-axis angle %.3f°", est.phi)


def _translations_and_offset(est: _Estimate, s: AlignSettings, progress: bool,
                             full_search: bool = True) -> None:
    """Two passes: the offset sets the stretch centre of the chain, the chain feeds the offset."""
    offset = 0.0 if s.auto_offset else float(s.axis_offset) / est.binning - _precentred_offset(est)
    searched = not full_search
    if s.auto_offset and not full_search:
        offset = float(geometry.gauge_fix(est.angles[~est.bad], est.t[~est.bad])[0])
    elif s.auto_offset and est.coarse.precentred:
        # A pre-centred copy is aligned to a pixel or so: its offset first, so that the chain
        # stretches about the right centre from its first pass.
        est.t[:, 1] = 0.0
        offset, est.history["offset_search"] = estimate_offset(
            est.work, est.angles, est.phi, est.t, est.usable, s.offset_search_px / est.binning,
            slabs=s.offset_slices, iterations=s.offset_iterations, projector=s.projector)
        searched = True
    correlate = Correlator(est.work.shape[1:], s.bandpass, s.taper, s.upsample, s.max_shift)
    for _ in range(2):
        est.t[:, 1] = offset
        est.t, est.quality, est.bad = translation_chain(
            est.work, est.angles, est.phi, est.t, est.usable, correlate, reference=s.reference,
            window=s.cumulative_window, bad_quality=s.bad_quality, progress=progress)
        ok = ~est.bad
        _, fixed = geometry.gauge_fix(est.angles[ok], est.t[ok])
        est.t[ok] = fixed + [0.0, offset]
        if s.auto_offset:
            # Full search once; later passes only refine around the estimate.
            search = 0.0 if searched else s.offset_search_px / est.binning
            delta, est.history["offset_search"] = estimate_offset(
                est.work, est.angles, est.phi, est.t, ok, search, slabs=s.offset_slices,
                iterations=s.offset_iterations, projector=s.projector)
            searched = True
            offset += delta
            est.t[ok, 1] += delta
    est.history.setdefault("offset_search", {})


def _precentred_offset(est: _Estimate) -> float:
    """The axis offset that the pre-centring itself carries (its constant part across the axis):
    a given offset is where the axis lies in the raw images."""
    ok = est.usable
    return geometry.gauge_fix(est.angles[ok], geometry.axis_frame(est.coarse.shifts[ok], est.phi))[0]


def _fine_angle(est: _Estimate, s: AlignSettings, progress: bool) -> None:
    """Where the common line's minimum is wide (an object with little structure across the
    axis, nearly rotationally symmetric about it), the centre-of-mass angle, if the object stays
    in view; when it moves φ noticeably, the along-axis shifts and one pass of the translations
    are redone at the new angle."""
    search = est.history["axis_angle_search"]
    if search["common_line_width_deg"] < SHARP_COMMON_LINE_DEG:
        search["centre_of_mass"] = {"used": False, "reason": "the common line is sharp"}
        search["fine_angle_from"] = "common line"
        return
    phi, record = centre_of_mass_angle(est.work, est.angles, ~est.bad, est.phi, est.t,
                                       est.coarse.radius)
    search["centre_of_mass"] = record
    search["fine_angle_from"] = "centre of mass" if phi is not None else "common line"
    if phi is None:
        log.info("centre-of-mass angle not used: %s; common-line angle %.3f° kept",
                 record["reason"], est.phi)
        return
    log.info("tilt-axis angle %.3f° ± %.3f° from the centres of mass of %d rows (common line "
             "%.3f°)", phi, record["se_deg"], record["rows"], est.phi)
    moved, est.phi = abs(phi - est.phi), phi
    if moved > 0.3:
        est.t[:, 0] = profile_shifts(est.work, est.phi, est.usable, est.coarse.radius)[1]
        _translations_and_offset(est, s, progress, full_search=False)


def _check_flagged(est: _Estimate, s: AlignSettings, source: str) -> None:
    """One bad image costs one tilt (the chain correlates across it); more than
    max_flagged_fraction of the series flagged means the alignment cannot be trusted."""
    bad = np.flatnonzero(est.bad)
    if len(bad) <= s.max_flagged_fraction * len(est.angles):
        return
    listed = ", ".join(f"{i} ({est.angles[i]:+.1f}°, {_reason(est, i)})" for i in bad)
    raise InputError(source, f"alignment flagged {len(bad)} of {len(est.angles)} tilts as unusable "
                     f"({100 * len(bad) / len(est.angles):.0f} %, more than align.max_flagged_fraction"
                     f" = {s.max_flagged_fraction}): {listed}",
                     "look at these images; leave out those that are blank or noise with "
                     f"import.exclude_angles: {[round(float(a), 2) for a in est.angles[bad]]}; "
                     "if they are only weak (thick sample, high tilt), lower align.bad_quality "
                     "or raise align.max_flagged_fraction")


def _reason(est: _Estimate, i: int) -> str:
    if est.coarse.outliers[i]:
        return "resembles neither neighbour"
    return "no signal" if not est.usable[i] else f"correlation {est.quality[i]:.2f}"


def _projection_matching(est: _Estimate, s: AlignSettings, progress: bool) -> None:
    """Projection matching; with a measured φ, then its refinement and three more rounds."""
    ok = ~est.bad
    est.t, quality, history, volume = projection_matching(
        est.work, est.angles, est.phi, est.t, ok, s, est.binning, progress=progress)
    est.history["axis_angle_refinement"] = {}
    if s.auto_axis_angle:
        est.phi, est.history["axis_angle_refinement"] = _refine_after_matching(est, s, ok)
        # Re-register the shifts at the refined angle.
        est.t, quality, more, _ = projection_matching(
            est.work, est.angles, est.phi, est.t, ok, s, est.binning, iterations=3,
            progress=progress, volume=volume)
        history += [dict(h, iteration=len(history) + h["iteration"]) for h in more]
    est.quality = np.where(est.bad, est.quality, quality)
    est.history["projection_matching"] = history


def _refine_after_matching(est: _Estimate, s: AlignSettings, ok: np.ndarray) -> tuple[float, dict]:
    """φ refined with the matched translations: by the reconstruction residual, or, where the
    centres of mass gave the angle (the object is nearly symmetric about the axis, so the
    residual hardly depends on the angle and resampling biases it), by the centres of mass."""
    if est.history["axis_angle_search"].get("fine_angle_from") != "centre of mass":
        phi, record = refine_axis_angle(est.work, est.angles, est.phi, est.t, ok, s)
        log.info("tilt-axis angle refined to %.3f° by reconstruction residual", phi)
        return phi, {"method": "reconstruction residual", **record}
    phi, record = centre_of_mass_angle(est.work, est.angles, ok, est.phi, est.t, est.coarse.radius)
    log.info("tilt-axis angle refined to %.3f° by centres of mass", phi if phi is not None else est.phi)
    return (est.phi if phi is None else phi), {"method": "centre of mass", **record}


def _result(est: _Estimate, method: str) -> Alignment:
    """Gauge-fixed raw-frame shifts at full resolution; flagged tilts get shifts interpolated from
    their good neighbours."""
    bad, angles = est.bad, est.angles
    # The pre-centring moved each image by whole pixels: add it back (axis frame).
    total = est.t + geometry.axis_frame(est.coarse.shifts, est.phi)
    offset, shifts = geometry.gauge_fix(angles[~bad], total[~bad])
    axis_t = np.zeros_like(est.t)
    axis_t[~bad] = shifts
    order = np.argsort(angles[~bad])  # np.interp needs increasing x (series may descend)
    for k in range(2):
        axis_t[bad, k] = np.interp(angles[bad], angles[~bad][order], shifts[order, k])
    for i in np.flatnonzero(bad):
        log.warning("tilt %d (%.1f°) flagged as bad: %s", int(i), angles[i], _reason(est, i))
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
        "coarse": h["coarse"],
        "axis_angle_search": h["axis_angle_search"],
        "offset_search": h["offset_search"],
        "self_consistency": h["self_consistency"],
        "timings_s": h["timings_s"],
    }

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
from ..core.intensity import vacuum_level
from .coarse import CoarsePass, screen_and_precentre
from .consistency import self_consistency
from .settings import AlignSettings
from .steps import Estimate, axis_angle, check_flagged, fine_angle, matched, reason, translations_and_offset
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


def align_tiltseries(stack: np.ndarray, angles: np.ndarray, settings: AlignSettings, gpu: bool = False,
                     progress: bool = False, source: str = "tilt series") -> Alignment:
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
    est = Estimate(work, angles, usable & ~coarse.outliers, b, coarse)
    est.history["coarse"] = _coarse_record(coarse, b)
    timings = {}
    axis_angle(est, s)
    timings["axis_angle"] = time.perf_counter() - t0
    translations_and_offset(est, s, progress)
    check_flagged(est, s, source)
    if s.auto_axis_angle:
        fine_angle(est, s, progress)
    timings["translations_and_offset"] = time.perf_counter() - t0 - timings["axis_angle"]
    use_pm = s.use_projection_matching(gpu)
    if use_pm:
        matched(est, s, progress)
    timings["projection_matching"] = time.perf_counter() - t0 - sum(timings.values())
    result = _result(est, _method(s, use_pm, est.history))
    t1 = time.perf_counter()
    translations = geometry.axis_frame(result.shifts_yx / b, result.axis_angle_deg)
    sc = result.history["self_consistency"] = self_consistency(
        raw, angles, ~result.bad, result.axis_angle_deg,
        translations + [0.0, result.axis_offset_px / b], b, s.projector)
    log.info("self-consistency (%s): raw %.4f, aligned %.4f", sc["measure"], sc["raw"], sc["aligned"])
    timings["self_consistency"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    result.history["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    return result


def _coarse_record(coarse: CoarsePass, binning: int) -> dict:
    return {"precentred": coarse.precentred, "max_shift_px": round(coarse.max_shift_px * binning, 2),
            "common_radius_px": round(coarse.radius * binning, 1),
            "screened_tilts": np.flatnonzero(coarse.outliers).tolist(),
            "neighbour_quality": coarse.neighbour_quality}


def _result(est: Estimate, method: str) -> Alignment:
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
        log.warning("tilt %d (%.1f°) flagged as bad: %s", int(i), angles[i], reason(est, i))
    history = {"axis_angle_refinement": {}, "projection_matching": [], **est.history}
    return Alignment(angles, est.phi, offset * est.binning,
                     geometry.raw_frame(axis_t, est.phi) * est.binning, est.quality, bad,
                     est.binning, method, history)


def _method(s: AlignSettings, projection_matching: bool, history: dict) -> str:
    search = history.get("axis_angle_search", {})
    method = (f"axis line from {len(search.get('candidates', []))} candidate(s) by reprojection "
              f"residual, angle from the {search.get('fine_angle_from')}"
              if s.auto_axis_angle else "fixed axis angle")
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

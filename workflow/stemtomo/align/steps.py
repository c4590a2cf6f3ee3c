"""The align stage's steps on one working state (`Estimate`): the axis angle and the along-axis
shifts, the translations and the offset, the fine angle, projection matching, and the check on
flagged tilts. stage.align_tiltseries runs them in order."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..core import geometry
from ..core.errors import InputError
from .angle import centre_of_mass_angle, search_axis
from .axis import profile_shifts
from .coarse import CoarsePass
from .matching import projection_matching, refine_axis_angle
from .offset import estimate_offset
from .settings import AlignSettings
from .translations import Correlator, translation_chain

log = logging.getLogger("stemtomo.align")


@dataclass
class Estimate:
    """The working state of one alignment (work px, axis frame of the pre-centred copy)."""
    work: np.ndarray               # pre-centred working copy (the prepared images if not needed)
    angles: np.ndarray
    usable: np.ndarray
    binning: int
    coarse: CoarsePass
    phi: float = 0.0
    t: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    quality: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bad: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    history: dict = field(default_factory=dict)


def axis_angle(est: Estimate, s: AlignSettings) -> None:
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


def translations_and_offset(est: Estimate, s: AlignSettings, progress: bool,
                             full_search: bool = True) -> None:
    """Two passes: the offset sets the stretch centre of the chain, the chain feeds the offset. A
    pre-centred copy is aligned to a pixel or so, so its offset is searched first and one pass
    suffices."""
    offset = 0.0 if s.auto_offset else float(s.axis_offset) / est.binning - _precentred_offset(est)
    searched, passes = not full_search, 2
    if s.auto_offset and not full_search:
        offset = float(geometry.gauge_fix(est.angles[~est.bad], est.t[~est.bad])[0])
    elif s.auto_offset and est.coarse.precentred:
        est.t[:, 1] = 0.0
        offset, est.history["offset_search"] = estimate_offset(
            est.work, est.angles, est.phi, est.t, est.usable, s.offset_search_px / est.binning,
            slabs=s.offset_slices, iterations=s.offset_iterations, projector=s.projector)
        searched, passes = True, 1
    correlate = Correlator(est.work.shape[1:], s.bandpass, s.taper, s.upsample, s.max_shift)
    for _ in range(passes):
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


def _precentred_offset(est: Estimate) -> float:
    """The axis offset that the pre-centring itself carries (its constant part across the axis):
    a given offset is where the axis lies in the raw images."""
    ok = est.usable
    return geometry.gauge_fix(est.angles[ok], geometry.axis_frame(est.coarse.shifts[ok], est.phi))[0]


def fine_angle(est: Estimate, s: AlignSettings, progress: bool) -> None:
    """Where the common line did not decide alone (an object nearly rotationally symmetric about
    the axis: its common-line cost is low along many directions and biased near the true one),
    the centre-of-mass angle, if the object stays in view; when it moves φ noticeably, the
    along-axis shifts and one pass of the translations are redone at the new angle."""
    search = est.history["axis_angle_search"]
    if search["common_line_decisive"]:
        search["centre_of_mass"] = {"used": False, "reason": "the common line decided alone"}
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
        translations_and_offset(est, s, progress, full_search=False)
        # Once more with the translations of the new angle (they were found at the old one).
        again, record = centre_of_mass_angle(est.work, est.angles, ~est.bad, est.phi, est.t,
                                             est.coarse.radius, rounds=1)
        if again is not None:
            est.phi = again
            search["centre_of_mass"] = {**search["centre_of_mass"], "angle_deg": round(again, 4),
                                        "after_translations": record}


def check_flagged(est: Estimate, s: AlignSettings, source: str) -> None:
    """One bad image costs one tilt (the chain correlates across it); more than
    max_flagged_fraction of the series flagged means the alignment cannot be trusted."""
    bad = np.flatnonzero(est.bad)
    if len(bad) <= s.max_flagged_fraction * len(est.angles):
        return
    listed = ", ".join(f"{i} ({est.angles[i]:+.1f}°, {reason(est, i)})" for i in bad)
    raise InputError(source, f"alignment flagged {len(bad)} of {len(est.angles)} tilts as unusable "
                     f"({100 * len(bad) / len(est.angles):.0f} %, more than align.max_flagged_fraction"
                     f" = {s.max_flagged_fraction}): {listed}",
                     "look at these images; leave out those that are blank or noise with "
                     f"import.exclude_angles: {[round(float(a), 2) for a in est.angles[bad]]}; "
                     "if they are only weak (thick sample, high tilt), lower align.bad_quality "
                     "or raise align.max_flagged_fraction")


def reason(est: Estimate, i: int) -> str:
    if est.coarse.outliers[i]:
        return "resembles none of its neighbours"
    return "no signal" if not est.usable[i] else f"correlation {est.quality[i]:.2f}"


def matched(est: Estimate, s: AlignSettings, progress: bool) -> None:
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


def _refine_after_matching(est: Estimate, s: AlignSettings, ok: np.ndarray) -> tuple[float, dict]:
    """φ refined with the matched translations: by the reconstruction residual where the common
    line decided alone (the object has structure across the axis); otherwise (nearly symmetric
    about the axis, so the residual hardly depends on the angle and resampling biases it) by the
    centres of mass, where the object stays in view."""
    if est.history["axis_angle_search"].get("common_line_decisive", True):
        phi, record = refine_axis_angle(est.work, est.angles, est.phi, est.t, ok, s)
        log.info("tilt-axis angle refined to %.3f° by reconstruction residual", phi)
        return phi, {"method": "reconstruction residual", **record}
    phi, record = centre_of_mass_angle(est.work, est.angles, ok, est.phi, est.t, est.coarse.radius)
    log.info("tilt-axis angle %s", f"refined to {phi:.3f}° by centres of mass" if phi is not None
             else f"kept at {est.phi:.3f}°: {record['reason']}")
    return (est.phi if phi is None else phi), {"method": "centre of mass", **record}

"""Tilt-axis candidates, decided by the data.

The common-line cost can be lowest at a wrong angle: for an object nearly rotationally symmetric
about the tilt axis (a needle on an on-axis holder) every projection looks alike, so profiles
along almost any direction agree, and the true axis is only a dip among others. Unless the
global minimum is a deep dip with no rival (propose), the minima of the coarse cost over the
whole 180° (and the microscope's value) are therefore candidates; each is refined on the common
line, and those that meet are merged; each distinct one is aligned cheaply
on a copy binned to ≤ 64 px (along-axis profiles, stretched chain, CGLS offset search) and scored
by what a wrong axis cannot achieve: the reprojection residual of a non-negative SIRT
reconstruction of a few slices (consistency.residual). The lowest residual wins; when the
runner-up comes within CLOSE of it, the choice is reported as low confidence.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from ..core import geometry
from .axis import profile_shifts, refine_angle
from .consistency import residual
from .offset import estimate_offset, slab_sinograms
from .settings import AlignSettings
from .translations import Correlator, translation_chain
from .working import rebin, views

log = logging.getLogger("stemtomo.align")
MAX_CANDIDATES = 6   # from the common line; the microscope's value comes on top
DECISIVE = 0.1       # a global minimum this far below the highest cost around it decides...
COMPETITIVE = 10.0   # ...unless another minimum's cost is within this factor of it
WINDOW_DEG = 12.0    # "around": within ± this many degrees
CLOSE = 0.10         # runner-up residual within 10 % of the best: low confidence (resampling
                     # alone moves the residuals of equally good lines by up to ~5 %)
SAME_LINE_DEG = 5.0  # candidates closer than this (after refinement) are one
SCORE_SLABS = 16     # slabs of rows (where the object is) of the residual that scores a candidate


@dataclass
class Candidate:
    angle_deg: float                 # where the search starts (grid point or microscope value)
    source: str                      # "common line" or "microscope"
    line_cost: float                 # coarse common-line cost there
    depth: float                     # that cost / the highest within ±WINDOW_DEG (small: prominent)
    refined_deg: float = np.nan      # after the registered common-line search around it
    offset_px: float = np.nan        # full-resolution px
    residual: float = np.nan         # consistency.residual after the cheap alignment (the score)

    def record(self) -> dict:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else
                    round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def same_line(a: float, b: float) -> float:
    """Angular distance between two lines (φ and φ + 180° are the same line)."""
    return abs((a - b + 90.0) % 180.0 - 90.0)


def propose(grid: np.ndarray, costs: np.ndarray, minima: np.ndarray, guess: float | None,
            circular: bool) -> list[Candidate]:
    """Candidates from the minima of the coarse cost (best first), and the microscope's value.

    A global minimum that is a deep, narrow dip (cost below DECISIVE × the highest within
    ±WINDOW_DEG) decides the line, unless another minimum comes within COMPETITIVE × its cost.
    A shallow one (an object alike from every direction) decides nothing: then up to
    MAX_CANDIDATES minima, the most prominent first, all go to the data."""
    step = float(grid[1] - grid[0]) if len(grid) > 1 else 2.0
    reach = int(round(WINDOW_DEG / step))
    found: list[Candidate] = []
    for i in minima:
        near = np.arange(i - reach, i + reach + 1)
        near = near % len(costs) if circular else near[(near >= 0) & (near < len(costs))]
        depth = float(costs[i] / max(costs[near].max(), 1e-30))
        found.append(Candidate(float(grid[i]), "common line", float(costs[i]), depth))
    best, rest = found[0], found[1:]
    if best.depth <= DECISIVE:
        chosen = [best] + [c for c in rest if c.line_cost <= COMPETITIVE * best.line_cost]
    else:
        chosen = [best] + sorted(rest, key=lambda c: c.depth)[:MAX_CANDIDATES - 1]
    if guess is not None and all(same_line(c.angle_deg, guess) > SAME_LINE_DEG for c in chosen):
        k = int(np.argmin([same_line(g, guess) for g in grid]))
        chosen.append(Candidate(float(guess), "microscope", float(costs[k]), np.nan))
    return chosen


def refine_and_merge(work: np.ndarray, usable: np.ndarray, candidates: list[Candidate],
                     radius: float) -> list[Candidate]:
    """Each candidate refined on the common line (copy ≤ 64 px); those that meet are one."""
    small = rebin(work, 64)
    f = work.shape[2] / small.shape[2]
    distinct: list[Candidate] = []
    for c in candidates:
        c.refined_deg = refine_angle(small, usable, c.angle_deg, radius / f)[0]
        if all(same_line(c.refined_deg, d.refined_deg) > SAME_LINE_DEG for d in distinct):
            distinct.append(c)
    return distinct


def score(work: np.ndarray, angles: np.ndarray, usable: np.ndarray, candidates: list[Candidate],
          s: AlignSettings, binning: int, radius: float, precentred: bool) -> None:
    """Align each candidate cheaply (copy ≤ 64 px) and fill in its offset and residual."""
    small = rebin(work, 64)
    f = work.shape[2] / small.shape[2]
    correlate = Correlator(small.shape[1:], s.bandpass, s.taper, 10, s.max_shift)
    for c in candidates:
        t, ok, delta = _cheap_alignment(small, angles, usable, c.refined_deg, correlate, s,
                                        s.offset_search_px / binning / f, radius / f, precentred)
        aligned = views(small, np.flatnonzero(ok), c.refined_deg, t, order=3)
        c.offset_px = delta * f * binning
        c.residual = residual(slab_sinograms(aligned, SCORE_SLABS)[0], angles[ok], s.projector)
        log.info("axis candidate %.1f° (%s): refined %.2f°, offset %.2f px, residual %.4f",
                 c.angle_deg, c.source, c.refined_deg, c.offset_px, c.residual)


def _cheap_alignment(small: np.ndarray, angles: np.ndarray, usable: np.ndarray, phi: float,
                     correlate: Correlator, s: AlignSettings, search: float, radius: float,
                     precentred: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Axis-frame translations at angle φ (profiles, one stretched chain, CGLS offset searches on
    4 slabs), the tilts kept, and the offset (px of `small`). A pre-centred copy is already
    aligned to a pixel or so, so its offset is searched first: the chain then stretches about
    the right centre."""
    t = np.zeros((len(angles), 2))
    t[:, 0] = profile_shifts(small, phi, usable, radius)[1]

    def offset(keep: np.ndarray, half_width: float) -> float:
        return estimate_offset(small, angles, phi, t, keep, half_width, slabs=2, iterations=10,
                               projector=s.projector)[0]

    start = offset(usable, search) if precentred else 0.0
    t[:, 1] = start
    t, _, bad = translation_chain(small, angles, phi, t, usable, correlate, bad_quality=s.bad_quality)
    ok = ~bad
    t[ok] = geometry.gauge_fix(angles[ok], t[ok])[1] + [0.0, start]
    delta = offset(ok, 0.0 if precentred else search)
    t[ok, 1] += delta
    return t, ok, start + delta


def choose(candidates: list[Candidate]) -> tuple[int, dict]:
    """Index of the best candidate and the decision's record (margin, confidence). A single
    distinct candidate needs no scoring: nothing competes with it."""
    scores = np.array([c.residual for c in candidates])
    if len(candidates) == 1:
        return 0, {"chosen": 0, "margin": None, "confidence": "high",
                   "reason": "one distinct candidate", "candidates": [candidates[0].record()]}
    order = np.argsort(scores)
    best, second = int(order[0]), int(order[1])
    margin = float(scores[second] / scores[best] - 1.0)
    confident = margin >= CLOSE
    decision = {"chosen": best, "margin": round(margin, 4),
                "confidence": "high" if confident else "low",
                "reason": "lowest residual" + ("" if confident else
                                               f"; runner-up within {100 * CLOSE:.0f} %"),
                "candidates": [c.record() for c in candidates]}
    if not confident:
        log.warning("LOW CONFIDENCE in the tilt-axis angle: candidates %.2f° and %.2f° explain the "
                    "data almost equally well (residuals %.4f and %.4f, %.1f %% apart); set "
                    "align.axis_angle_guess to the microscope's value or align.axis_angle if known",
                    candidates[best].refined_deg, candidates[second].refined_deg,
                    scores[best], scores[second], 100 * margin)
    return best, decision

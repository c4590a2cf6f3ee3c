"""Projection matching: reconstruct (OS-SIRT), reproject, re-register every tilt to its
reprojection, repeat until the shifts move by less than the tolerance (Dengler 1989; Parkinson
et al. 2012); and the reconstruction-based refinement of the tilt-axis angle."""

from __future__ import annotations

import logging

import numpy as np

from ..core import geometry
from ..tomo.algorithms import sirt
from ..tomo.projectors import make_projector
from .settings import AlignSettings
from .translations import Correlator
from .working import views

log = logging.getLogger("stemtomo.align")
CHUNK = 16  # tilts registered per batch (bounds the FFT workspace on large images)


def register_to(correlate: Correlator, references: np.ndarray,
                images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shifts (n, 2) and qualities (n,) of each image against its own reference, in batches."""
    shifts, quality = np.zeros((len(images), 2)), np.zeros(len(images))
    for start in range(0, len(images), CHUNK):
        r = correlate(references[start:start + CHUNK], images[start:start + CHUNK])
        shifts[start:start + CHUNK], quality[start:start + CHUNK] = r.shift, r.quality
    return shifts, quality


def extrapolate_offset(offsets: list[float], tol: float) -> tuple[float, float, bool]:
    """Aitken's Δ² on the geometrically converging axis offset: (offset, estimated remaining
    change, jumped). Jumps (at most 2 px) once three estimates show a steady ratio in (0.2, 0.95)
    and more than `tol` remains; the history then restarts at the new value."""
    offset, remaining = offsets[-1], np.inf  # unknown until a ratio is measured
    if len(offsets) < 3:
        return offset, remaining, False
    d1, d2 = offsets[-1] - offsets[-2], offsets[-2] - offsets[-3]
    ratio = d1 / d2 if d2 != 0 else 0.0
    remaining = abs(d1) * max(ratio, 0.0) / (1 - min(max(ratio, 0.0), 0.95))
    if 0.2 < ratio < 0.95 and remaining > tol:
        offset += float(np.clip(d1 * ratio / (1 - ratio), -2.0, 2.0))
        offsets[:] = [offset]
        return offset, remaining, True
    return offset, remaining, False


def projection_matching(work: np.ndarray, angles: np.ndarray, axis_angle: float,
                        translations: np.ndarray, usable: np.ndarray, settings: AlignSettings,
                        binning: int, iterations: int | None = None, progress: bool = False,
                        volume: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray, list[dict], np.ndarray]:
    """Refine axis-frame translations (work px, `binning` × binned) against reprojections of
    SIRT reconstructions, for at most `iterations` rounds (settings.pm_iterations by default).

    The reconstruction is warm-started from the previous iteration. The axis offset, the weakly
    determined constant mode (see geometry.gauge_fix), converges geometrically and is
    extrapolated to its limit (extrapolate_offset).
    """
    idx = np.flatnonzero(usable)
    n, h, w = work.shape
    projector = make_projector(settings.projector, angles[idx], (w, h, w))
    correlate = Correlator((h, w), settings.bandpass, settings.taper, settings.upsample, 0.05)
    tol = settings.pm_tolerance_px / binning
    t = translations.copy()
    quality = np.zeros(n)
    history: list[dict] = []
    offsets = [geometry.gauge_fix(angles[idx], t[idx])[0]]
    for it in range(iterations or settings.pm_iterations):
        aligned = views(work, idx, axis_angle, t, order=3)
        rec = sirt(projector, aligned, settings.pm_sirt_iterations, x0=volume,
                   subsets=settings.pm_subsets, progress=progress)
        volume = rec.volume
        delta = np.zeros((n, 2))
        delta[idx], quality[idx] = register_to(correlate, projector.forward(volume), aligned)
        offset, shifts = geometry.gauge_fix(angles[idx], t[idx] + delta[idx])
        offsets.append(offset)
        offset, remaining, jumped = extrapolate_offset(offsets, tol)
        new = t.copy()
        new[idx] = shifts + [0.0, offset]
        rms = float(np.sqrt(np.mean((new[idx] - t[idx]) ** 2)))
        t = new
        history.append({"iteration": it + 1, "offset_px": offset * binning,
                        "rms_change_px": rms * binning, "extrapolated": jumped,
                        "residual": rec.residuals[-1]})
        log.info("projection matching %d: rms shift change %.3f px, offset %.3f px%s, residual %.4f",
                 it + 1, rms * binning, offset * binning, " (extrapolated)" if jumped else "",
                 rec.residuals[-1])
        if it >= 2 and rms < tol and remaining < tol and not jumped:
            break
    return t, quality, history, volume


def refine_axis_angle(work: np.ndarray, angles: np.ndarray, axis_angle: float,
                      translations: np.ndarray, usable: np.ndarray, settings: AlignSettings,
                      half_width: float = 0.6, step: float = 0.15) -> tuple[float, dict]:
    """Reconstruction-based refinement of the tilt-axis angle: the data residual of a fresh OS-SIRT
    reconstruction is smallest at the true angle; parabola through the grid. (Fresh, because a
    volume reconstructed at the old angle would favour the old angle.)"""
    idx = np.flatnonzero(usable)
    n, h, w = work.shape
    projector = make_projector(settings.projector, angles[idx], (w, h, w))
    grid = axis_angle + np.arange(-half_width, half_width + 1e-9, step)
    residuals = []
    for a in grid:
        rec = sirt(projector, views(work, idx, a, translations, order=3),
                   2 * settings.pm_sirt_iterations, subsets=settings.pm_subsets)
        residuals.append(rec.residuals[-1])
    # A parabola through the whole grid averages out the residual's noise near the minimum.
    c2, c1, _ = np.polyfit(grid - axis_angle, residuals, 2)
    best = axis_angle + (-c1 / (2 * c2) if c2 > 0 else grid[int(np.argmin(residuals))] - axis_angle)
    best = float(np.clip(best, grid[0], grid[-1]))
    return best, {"grid_deg": grid.tolist(), "residual": [float(r) for r in residuals]}

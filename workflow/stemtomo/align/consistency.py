"""How well an alignment explains the data: the reprojection residual ‖Ax − y‖/‖y‖ after a fixed
number of non-negative SIRT iterations on a few slabs of slices (rows perpendicular to the tilt
axis, summed in groups: a slab sum is still a parallel projection, of the slab).

One measure for two uses. It scores axis candidates: a wrong axis cannot be explained by any
object, so its residual stays high (the non-negativity matters: unconstrained least squares fits
much of the inconsistency with negative densities). And it is the self-consistency reported in
alignment.json and the QC figure, for the raw series (as if it were aligned) and the aligned one,
on the same slabs of the same binned copy, so a user sees how much the alignment explains.
"""

from __future__ import annotations

import numpy as np

from ..tomo.algorithms import sirt
from ..tomo.projectors import make_projector
from .working import rebin, views

ITERATIONS = 30  # SIRT iterations of the measure (fixed, so residuals compare)
SLABS = 8        # slabs of the self-consistency measure
WIDTH = 256      # on a copy binned to ≤ this width


def residual(sinograms: np.ndarray, angles: np.ndarray, projector: str = "joseph-cpu",
             iterations: int = ITERATIONS) -> float:
    """‖Ax − y‖/‖y‖ of a non-negative SIRT reconstruction of (tilt, slab, x) sinograms."""
    n, k, w = sinograms.shape
    op = make_projector(projector, angles, (w, k, w))
    return float(sirt(op, sinograms, iterations).residuals[-1])


def fixed_slabs(height: int, count: int = SLABS) -> list[np.ndarray]:
    """The central 80 % of the rows in `count` equal slabs, independent of any alignment (so raw
    and aligned series are measured on the same rows) and of the object's layering (a slab
    holds several rows, so it does not matter which layer a single row would hit)."""
    lo = int(round(0.1 * height))
    return np.array_split(np.arange(lo, height - lo), count)


def slab_sums(stack: np.ndarray, slabs: list[np.ndarray]) -> np.ndarray:
    """(tilt, slab, x) sums of the rows of each slab: still parallel projections (of the slab)."""
    return np.stack([stack[:, rows].sum(axis=1) for rows in slabs], axis=1)


def self_consistency(work: np.ndarray, angles: np.ndarray, keep: np.ndarray, axis_angle: float,
                     translations: np.ndarray, binning: int, projector: str) -> dict:
    """The residual of the raw working copy (axis taken as vertical through the centre, no shifts)
    and of the same images aligned, both from a copy binned to ≤ WIDTH px, on the same slabs."""
    idx = np.flatnonzero(keep)
    raw = rebin(work[idx], WIDTH)
    f = work.shape[2] / raw.shape[2]
    aligned = views(raw, np.arange(len(idx)), axis_angle, translations[idx] / f, order=3)
    slabs = fixed_slabs(raw.shape[1])
    return {"measure": f"||Ax - y|| / ||y|| after {ITERATIONS} non-negative SIRT iterations on "
                       f"{len(slabs)} slabs of rows, binned {binning * work.shape[2] // raw.shape[2]}x",
            "iterations": ITERATIONS, "slabs": [[int(r[0]), int(r[-1])] for r in slabs],
            "raw": round(residual(slab_sums(raw, slabs), angles[idx], projector), 5),
            "aligned": round(residual(slab_sums(aligned, slabs), angles[idx], projector), 5)}

"""Tilt-axis angle from centres of mass: a second estimator, independent of the common line.

In the aligned frame, the centre of mass of each row (a slice perpendicular to the axis) of a
parallel projection is the projection of the slice's own centre of mass, x(θ) = X cos θ + Z sin θ
+ c, where c is where the tilt axis crosses that row. With the true axis angle c is the same for
every row; an angle error Δ makes it grow as Δ · y along the axis, so the slope of c(y) is the
correction (the tilt_com method of ETSpy and tomviz users, here on every row where the object
stays in view). It holds only for rows that the object never leaves: it suits needles and
isolated particles, not slabs wider than the field, so it reports how many rows it could use and
the standard error of the slope.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MIN_ROWS = 12  # rows with the object in view at every tilt needed for an estimate


def com_axis(aligned: np.ndarray, angles: np.ndarray, radius: float) -> dict | None:
    """Axis-angle correction (deg) from the rows of an aligned (tilt, y, x) stack that keep the
    object inside the disk of `radius` px about the centre at every tilt; None if too few do."""
    n, h, w = aligned.shape
    y = np.arange(h) - (h - 1) / 2
    x = np.arange(w) - (w - 1) / 2
    disk = y[:, None] ** 2 + x[None, :] ** 2 <= radius**2
    envelope = ndimage.gaussian_filter(aligned.max(axis=0), 1.0)
    support = ndimage.binary_dilation(envelope > 0.05 * envelope.max(), iterations=2)
    vacuum = disk & ~support
    rows = np.flatnonzero(support.any(axis=1) & ~(support & ~disk).any(axis=1))
    if len(rows) < MIN_ROWS or vacuum.sum() < 0.1 * disk.sum():
        return None
    # Each tilt's own background, from its vacuum: a residual offset inside the support would pull
    # every row's centre towards the support's centre, which differs from row to row.
    background = np.median(aligned[:, vacuum], axis=1)
    m = (aligned[:, rows] - background[:, None, None]) * support[rows]
    mass = m.sum(axis=2)
    centres = (m * x).sum(axis=2) / np.where(np.abs(mass) > 0, mass, 1.0)
    th = np.deg2rad(angles)
    basis = np.stack([np.cos(th), np.sin(th), np.ones_like(th)], axis=1)
    crossing = np.linalg.lstsq(basis, centres, rcond=None)[0][2]
    weight = np.maximum(mass.mean(axis=0), 0.0)
    (slope, intercept), cov = np.polyfit(y[rows], crossing, 1, w=np.sqrt(weight), cov="unscaled")
    resid = crossing - (slope * y[rows] + intercept)
    scale = np.sum(weight * resid**2) / max(len(rows) - 2, 1)
    return {"correction_deg": float(-np.rad2deg(slope)),
            "se_deg": float(np.rad2deg(np.sqrt(max(cov[0, 0] * scale, 0.0)))),
            "rows": int(len(rows)), "offset_px": float(intercept)}

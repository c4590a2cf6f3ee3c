"""Tilt-axis angle from the common line.

The profile of every projection along the tilt axis (the image integrated perpendicular to the
axis) is the same for all tilts, whatever the tilt range, because it is the projection of the
object onto the axis. φ minimises the spread of the profiles after 1D subpixel registration; that
registration also gives the per-tilt shifts along the axis, without accumulating drift.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from ..core import geometry
from .registration import fourier_shift, register
from .working import rebin


class Profiles:
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


def align_profiles(profiles: np.ndarray, rounds: int = 3) -> tuple[float, np.ndarray]:
    """Register 1D profiles to their mean; return (relative spread, shift of each profile)."""
    p = profiles / np.maximum(np.abs(profiles.sum(axis=1, keepdims=True)), 1e-12)
    p = p - p.mean(axis=1, keepdims=True)
    shifts = np.zeros(len(p))
    for _ in range(rounds):
        mean = fourier_shift(p, -shifts[:, None]).mean(axis=0)
        shifts = register(mean, p, upsample=100, ndim=1).shift[:, 0]
        shifts -= shifts.mean()
    aligned = fourier_shift(p, -shifts[:, None])
    mean = aligned.mean(axis=0)
    spread = float(np.sum((aligned - mean) ** 2) / (len(p) * np.sum(mean**2)))
    return spread, shifts


def magnitude_spread(profiles: np.ndarray) -> float:
    """Shift-invariant version of the profile spread (Fourier magnitudes), for the coarse search."""
    p = profiles / np.maximum(np.abs(profiles.sum(axis=1, keepdims=True)), 1e-12)
    mag = np.abs(np.fft.rfft(p - p.mean(axis=1, keepdims=True), axis=1))
    return float(np.sum((mag - mag.mean(axis=0)) ** 2) / (len(p) * np.sum(mag.mean(axis=0) ** 2)))


def estimate_axis_angle(work: np.ndarray, guess: float, search: float,
                        usable: np.ndarray) -> tuple[float, np.ndarray, dict]:
    """φ minimising the spread of the along-axis profiles; also the along-axis shifts (work px)."""
    profiles = Profiles(work[usable])

    def cost(a: float) -> float:
        return align_profiles(profiles.along_axis(a), rounds=2)[0]

    # Coarse: shift-invariant spread every 2° on images ≤ 128 px; fine: registered spread around
    # the best at the working binning.
    small = Profiles(rebin(work[usable], 128))
    grid = guess + np.arange(-search, search + 1e-9, 2.0)
    coarse = np.array([magnitude_spread(small.along_axis(a)) for a in grid])
    best = grid[int(np.argmin(coarse))]
    res = optimize.minimize_scalar(cost, bounds=(best - 2.5, best + 2.5), method="bounded",
                                   options={"xatol": 0.002})
    angle = float(res.x)
    spread, y_shifts = align_profiles(profiles.along_axis(angle))
    shifts = np.zeros(len(work))
    shifts[usable] = y_shifts
    return angle, shifts, {"grid_deg": grid.tolist(), "grid_cost": coarse.tolist(),
                           "spread": spread, "evaluations": int(res.nfev) + len(grid)}


def profile_shifts(work: np.ndarray, angle_deg: float) -> np.ndarray:
    """Along-axis shifts (work px) of every tilt at a known axis angle."""
    return align_profiles(Profiles(work).along_axis(angle_deg))[1]

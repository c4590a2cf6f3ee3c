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
    """Projections of each image onto a direction, for pixels inside a disk about the centre (the
    same region for every direction; corners would add direction-dependent background). The
    disk's rim is tapered (cosine over `soft` of the radius), so an object that runs out of the
    field of view ends smoothly in every profile instead of with a step at a fixed place."""

    def __init__(self, work: np.ndarray, radius: float | None = None, soft: float = 0.0) -> None:
        n, h, w = work.shape
        full = min(h, w) / 2 - 1
        self.radius = int(min(full, radius if radius is not None else full))
        y, x = np.mgrid[:h, :w]
        y, x = y - geometry.centre(h), x - geometry.centre(w)
        r = np.sqrt(y**2 + x**2)
        inside = r <= self.radius
        rim = np.clip((self.radius - r[inside]) / max(soft * self.radius, 1.0), 0.0, 1.0)
        self.y, self.x = y[inside], x[inside]
        self.values = work[:, inside] * (0.5 - 0.5 * np.cos(np.pi * rim))
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


def coarse_costs(work: np.ndarray, usable: np.ndarray, centre: float, search: float,
                 radius: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shift-invariant profile spread every 2° over centre ± search on images ≤ 128 px. A full
    search (±90°) covers the 180° of distinct lines once (φ and φ + 180° give the same line)."""
    small = rebin(work[usable], 128)
    f = work.shape[2] / small.shape[2]
    profiles = Profiles(small, None if radius is None else radius / f)
    end = search if search < 90 else search - 1.0
    grid = centre + np.arange(-search, end + 1e-9, 2.0)
    return grid, np.array([magnitude_spread(profiles.along_axis(a)) for a in grid])


def local_minima(costs: np.ndarray, circular: bool, separation: int = 1) -> np.ndarray:
    """Indices of the minima of a cost on a grid (a circular one wraps), best first: points
    lowest within ± `separation` grid steps (so one valley gives one minimum)."""
    n = len(costs)
    keep = []
    for i in range(n):
        near = np.arange(i - separation, i + separation + 1)
        near = near % n if circular else near[(near >= 0) & (near < n)]
        others = near[near != i]
        if np.all(costs[i] < costs[others]) or (np.all(costs[i] <= costs[others])
                                                and i == near[np.argmin(costs[near])]):
            keep.append(i)
    idx = np.array(keep, dtype=int)
    return idx[np.argsort(costs[idx])]


def refine_angle(work: np.ndarray, usable: np.ndarray, start: float, radius: float | None = None,
                 half_width: float = 2.5) -> tuple[float, int]:
    """The registered profile spread minimised (Brent) within start ± half_width; also the
    number of cost evaluations."""
    profiles = Profiles(work[usable], radius)

    def cost(a: float) -> float:
        return align_profiles(profiles.along_axis(a), rounds=2)[0]

    res = optimize.minimize_scalar(cost, bounds=(start - half_width, start + half_width),
                                   method="bounded", options={"xatol": 0.002})
    return float(res.x), int(res.nfev)


def profile_shifts(work: np.ndarray, angle_deg: float, usable: np.ndarray | None = None,
                   radius: float | None = None) -> tuple[float, np.ndarray]:
    """Along-axis shifts (work px) of every tilt at a known axis angle (0 where not usable), and
    the profiles' spread."""
    usable = np.ones(len(work), bool) if usable is None else usable
    spread, y = align_profiles(Profiles(work[usable], radius).along_axis(angle_deg))
    shifts = np.zeros(len(work))
    shifts[usable] = y
    return spread, shifts

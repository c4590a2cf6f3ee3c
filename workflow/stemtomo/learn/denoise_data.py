"""What the Noise2Inverse network sees (NumPy only): planes perpendicular to the tilt axis, the
X:1 training pairs drawn from the sub-reconstructions, and the error against a known density.

The reconstruction is computed row by row along the tilt axis (y), so its noise and streaks live in
the x-z planes volume[:, y, :] (the planes Noise2Inverse trains on) and are independent from one
plane to the next: 2.5D context takes neighbouring planes along y as extra channels.
"""

from __future__ import annotations

import numpy as np

from ..core.intensity import Normalisation


def padded_size(n: int, multiple: int, minimum: int) -> int:
    """The smallest multiple of `multiple` that is ≥ n and ≥ minimum."""
    return max(-(-n // multiple) * multiple, -(-minimum // multiple) * multiple)


def to_planes(volume: np.ndarray, norm: Normalisation, multiple: int, minimum: int = 0) -> np.ndarray:
    """(nz, ny, nx) volume → (ny, nz', nx') normalised float32 x-z planes, mirrored at the far
    edges up to a multiple of `multiple` (the U-Net's 2^depth) and at least `minimum` px."""
    nz, _, nx = volume.shape
    planes = norm.apply(np.asarray(volume, dtype=np.float32).transpose(1, 0, 2)).astype(np.float32)
    pad = ((0, 0), (0, padded_size(nz, multiple, minimum) - nz), (0, padded_size(nx, multiple, minimum) - nx))
    return np.ascontiguousarray(np.pad(planes, pad, mode="symmetric"))


def from_planes(planes: np.ndarray, shape: tuple[int, int, int], norm: Normalisation) -> np.ndarray:
    """The inverse of to_planes: (ny, nz', nx') planes → (nz, ny, nx) volume in the input's units."""
    nz, _, nx = shape
    return np.ascontiguousarray((planes[:, :nz, :nx] * norm.span + norm.low).transpose(1, 0, 2),
                                dtype=np.float32)


def context_planes(y: np.ndarray | int, ny: int, context: int) -> np.ndarray:
    """Plane indices y-c … y+c (edges repeated) for each y: (len(y), 2c+1)."""
    y = np.atleast_1d(np.asarray(y))
    return np.clip(y[:, None] + np.arange(-context, context + 1)[None, :], 0, ny - 1)


class SplitPairs:
    """The X:1 pairs of Noise2Inverse: for split j, the input is the mean of the other K−1
    sub-reconstructions and the target is sub-reconstruction j. Holds K planes arrays and their
    sum (K+1 volumes), so no input volume is ever stored."""

    def __init__(self, splits: list[np.ndarray]) -> None:
        if len(splits) < 2 or len({s.shape for s in splits}) != 1:
            raise ValueError("Noise2Inverse needs at least 2 sub-reconstructions of one shape")
        self.targets = splits
        self.total = np.sum(splits, axis=0, dtype=np.float32)
        self.k = len(splits)
        self._plane_weights: list[np.ndarray] | None = None

    def inputs(self, j: int, planes: np.ndarray) -> np.ndarray:
        """Input planes (mean of the other splits) of split j at the given plane indices."""
        return (self.total[planes] - self.targets[j][planes]) / (self.k - 1)

    def draw(self, rng: np.random.Generator, count: int, size: int, context: int,
             bright: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """`count` random pairs (split, plane, position): inputs (n, 2c+1, size, size) and
        targets (n, size, size), float32. A fraction `bright` of them is centred on a voxel drawn
        in proportion to the input's intensity (importance sampling: small bright Pt particles
        fill a tiny share of the volume, so uniform draws hardly ever show them to the network);
        the input alone decides, so the draw is independent of the target's noise and the X:1
        target's expectation is unchanged."""
        ny, nz, nx = self.total.shape
        j = rng.integers(self.k, size=count)
        y = rng.integers(ny, size=count)
        z0 = rng.integers(nz - size + 1, size=count)
        x0 = rng.integers(nx - size + 1, size=count)
        for n in np.flatnonzero(rng.random(count) < bright) if bright > 0 else ():
            y[n], z0[n], x0[n] = self._bright_origin(rng, int(j[n]), size)
        near = context_planes(y, ny, context)
        inputs = np.empty((count, 2 * context + 1, size, size), np.float32)
        targets = np.empty((count, size, size), np.float32)
        for n in range(count):
            zs, xs = slice(z0[n], z0[n] + size), slice(x0[n], x0[n] + size)
            inputs[n] = self.inputs(int(j[n]), near[n])[:, zs, xs]
            targets[n] = self.targets[j[n]][y[n], zs, xs]
        return inputs, targets

    def _bright_origin(self, rng: np.random.Generator, j: int, size: int) -> tuple[int, int, int]:
        """A patch origin (plane, z0, x0) around a voxel drawn ∝ split j's input intensity (≥ 0):
        the plane by its summed intensity, then the voxel within it (never a whole-volume table,
        which would cost 8 bytes a voxel)."""
        if self._plane_weights is None:
            self._plane_weights = [np.maximum(self.inputs(k, np.arange(len(self.total))), 0)
                                   .sum(axis=(1, 2), dtype=np.float64) for k in range(self.k)]
        w = self._plane_weights[j]
        if w.sum() <= 0:  # nothing bright: a uniform draw
            return (int(rng.integers(len(w))), *(int(rng.integers(n - size + 1))
                                                  for n in self.total.shape[1:]))
        y = int(rng.choice(len(w), p=w / w.sum()))
        plane = np.maximum(self.inputs(j, np.array([y]))[0], 0).ravel().astype(np.float64)
        iz, ix = np.unravel_index(int(rng.choice(plane.size, p=plane / plane.sum())),
                                  self.total.shape[1:])
        _, nz, nx = self.total.shape
        return (y, int(np.clip(iz - size // 2, 0, nz - size)),
                int(np.clip(ix - size // 2, 0, nx - size)))


def relative_error(volume: np.ndarray, reference: np.ndarray) -> float:
    """‖s·v − r‖ / ‖r‖ with the least-squares scale s = ⟨v, r⟩ / ⟨v, v⟩: a reconstruction's
    distance from a known density in whatever units each is in."""
    v = np.asarray(volume, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    if v.shape != r.shape:
        raise ValueError(f"volume of {v.size} voxels against a reference of {r.size}")
    scale = float(v @ r) / max(float(v @ v), 1e-30)
    return float(np.linalg.norm(scale * v - r) / max(np.linalg.norm(r), 1e-30))

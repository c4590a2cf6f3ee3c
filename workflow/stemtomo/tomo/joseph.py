"""Parallel-beam projector by Joseph's method (P. M. Joseph, IEEE TMI 1982) on the CPU.

For each angle the projection is one sparse matrix (detector × (z, x)) applied to all y slices at
once, in one layout (`columns`, `apply`) for every user: the joseph-cpu projector (all tilts in one
matrix), and the simulator, which projects tilt by tilt at a finer grid than any reconstruction,
so that the synthetic data are not made by the projector that reconstructs them (no inverse crime).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from ..core.geometry import centre


def joseph_matrix(nz: int, nx: int, nu: int, angle_deg: float) -> sp.csr_matrix:
    """Sparse (nu, nz*nx) matrix of line integrals (unit voxel length) at one tilt angle.

    Detector position u = x·cos θ + z·sin θ; rays run along (−sin θ, cos θ) in (x, z). The volume is
    zero outside its bounds.
    """
    th = np.deg2rad(angle_deg)
    c, s = np.cos(th), np.sin(th)
    u = np.arange(nu) - centre(nu)
    if abs(c) >= abs(s):
        # Step through z rows, interpolate along x.
        steps, n_interp = np.arange(nz) - centre(nz), nx
        pos = (u[:, None] - steps[None, :] * s) / c + centre(nx)
        weight = 1.0 / abs(c)
    else:
        # Step through x columns, interpolate along z.
        steps, n_interp = np.arange(nx) - centre(nx), nz
        pos = (u[:, None] - steps[None, :] * c) / s + centre(nz)
        weight = 1.0 / abs(s)
    step_idx = np.broadcast_to(np.arange(len(steps))[None, :], pos.shape)
    rows = np.broadcast_to(np.arange(nu)[:, None], pos.shape)
    i0 = np.floor(pos).astype(np.int64)
    frac = pos - i0
    r_all, c_all, w_all = [], [], []
    for k, w in ((i0, 1.0 - frac), (i0 + 1, frac)):
        ok = (k >= 0) & (k < n_interp) & (w > 0)
        if abs(c) >= abs(s):
            cols = step_idx[ok] * nx + k[ok]
        else:
            cols = k[ok] * nx + step_idx[ok]
        r_all.append(rows[ok])
        c_all.append(cols)
        w_all.append(w[ok] * weight)
    return sp.csr_matrix(
        (np.concatenate(w_all).astype(np.float32), (np.concatenate(r_all), np.concatenate(c_all))),
        shape=(nu, nz * nx),
    )


def series_matrix(nz: int, nx: int, nu: int, angles_deg: np.ndarray) -> sp.csr_matrix:
    """The matrices of all tilts stacked: (tilts · nu, nz · nx)."""
    return sp.vstack([joseph_matrix(nz, nx, nu, float(a)) for a in angles_deg]).tocsr()


def columns(volume: np.ndarray) -> np.ndarray:
    """A (z, y, x) volume in the layout the matrices act on: (z · x, y) float32, every y slice a
    column."""
    nz, ny, nx = volume.shape
    return np.ascontiguousarray(np.asarray(volume, np.float32).transpose(0, 2, 1)).reshape(nz * nx, ny)


def apply(matrix: sp.csr_matrix, cols: np.ndarray, nu: int) -> np.ndarray:
    """Projections (tilt, y, u) of the columns under a (tilts · nu, z · x) matrix."""
    out = matrix @ cols
    return np.ascontiguousarray(out.reshape(-1, nu, cols.shape[1]).transpose(0, 2, 1))


def projections(volume: np.ndarray, angles_deg: np.ndarray, detector_width: int | None = None,
                voxel_length: float = 1.0, progress: bool = False) -> Iterator[np.ndarray]:
    """Line integrals of a (z, y, x) volume, one (y, u) image per tilt, built one tilt at a time
    (a fine simulation grid would not fit every tilt's matrix at once)."""
    nz, ny, nx = volume.shape
    nu = detector_width or nx
    cols = columns(volume)
    for a in tqdm(angles_deg, desc="project", unit="tilt", disable=not progress):
        yield apply(joseph_matrix(nz, nx, nu, float(a)), cols, nu)[0] * voxel_length


def project(volume: np.ndarray, angles_deg: np.ndarray, detector_width: int | None = None,
            voxel_length: float = 1.0, progress: bool = False) -> np.ndarray:
    """Line integrals of a (z, y, x) volume at the given tilts → (tilt, y, u) float32 stack."""
    out = np.empty((len(angles_deg), volume.shape[1], detector_width or volume.shape[2]), np.float32)
    for i, image in enumerate(projections(volume, angles_deg, detector_width, voxel_length, progress)):
        out[i] = image
    return out

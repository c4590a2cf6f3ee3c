"""Parallel-beam projector by Joseph's method (P. M. Joseph, IEEE TMI 1982) on the CPU.

Used by the simulator at a finer grid than any reconstruction, so that the synthetic data are not
made by the projector that reconstructs them (no inverse crime). For each angle the projection is
one sparse matrix (detector × (z, x)) applied to all y slices at once.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from .geometry import centre


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


def project(volume: np.ndarray, angles_deg: np.ndarray, detector_width: int | None = None,
            voxel_length: float = 1.0, progress: bool = False) -> np.ndarray:
    """Line integrals of a (z, y, x) volume at the given tilts → (tilt, y, u) float32 stack."""
    nz, ny, nx = volume.shape
    nu = detector_width or nx
    columns = np.ascontiguousarray(volume.transpose(0, 2, 1).reshape(nz * nx, ny), dtype=np.float32)
    out = np.empty((len(angles_deg), ny, nu), dtype=np.float32)
    for i, a in enumerate(tqdm(angles_deg, desc="project", unit="tilt", disable=not progress)):
        out[i] = (joseph_matrix(nz, nx, nu, float(a)) @ columns).T * voxel_length
    return out

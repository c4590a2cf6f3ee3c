"""TomoPy as a reconstruction backend (conda-forge only; not on PyPI).

TomoPy reconstructs whole slices itself (its own MLEM/OSEM/SIRT/gridrec on the CPU, or ASTRA's
EM_CUDA/SIRT_CUDA through `tomopy.astra` on a GPU), so it is an alternative to the projector loop
rather than a projector. Its sinogram layout (angle, slice, detector) is stemtomo's (tilt, y, u);
its slice orientation and rotation sense are not assumed but measured once against stemtomo's own
projector (`orientation`), so the volume lands in stemtomo's frame whatever the TomoPy version.
"""

from __future__ import annotations

import functools

import numpy as np

from ..tomo.projectors import make_projector
from .settings import ReconstructSettings


@functools.cache
def orientation() -> tuple[int, bool]:
    """(angle sign, transpose) that map TomoPy's slices onto stemtomo's (z, x) frame: found by
    projecting an asymmetric object with tomopy.project and with the joseph-cpu projector."""
    import tomopy

    n = 33
    obj = np.zeros((1, n, n), np.float32)
    obj[0, 6:10, 20:24] = 1.0
    obj[0, 22:24, 8:15] = 2.0
    angles = np.array([-50.0, -20.0, 15.0, 40.0])
    ours = make_projector("joseph-cpu", angles, (n, 1, n)).forward(obj.transpose(1, 0, 2))[:, 0]
    best, choice = -np.inf, (1, False)
    for sign in (1, -1):
        for transpose in (False, True):
            src = obj.transpose(0, 2, 1) if transpose else obj
            theirs = tomopy.project(src, sign * np.deg2rad(angles), center=(n - 1) / 2, pad=False)
            score = np.corrcoef(theirs[:, 0].ravel(), ours.ravel())[0, 1]
            if score > best:
                best, choice = score, (sign, transpose)
    if best < 0.99:
        raise RuntimeError(f"TomoPy's geometry could not be matched to stemtomo's (r = {best:.3f})")
    return choice


def reconstruct_tomopy(data: np.ndarray, angles: np.ndarray, nz: int,
                       settings: ReconstructSettings, gpu: bool) -> np.ndarray:
    """(tilt, rows, x) → (nz, rows, x) volume with TomoPy; `nz` ≤ x (TomoPy makes square slices)."""
    import tomopy

    nx = data.shape[2]
    if nz > nx:
        raise ValueError(f"TomoPy reconstructs square slices: height {nz} > width {nx}")
    sign, transpose = orientation()
    theta = sign * np.deg2rad(angles)
    kwargs: dict = {"center": (nx - 1) / 2, "sinogram_order": False}
    method = settings.method
    if gpu and method.tomopy_gpu:
        kwargs.update(algorithm=tomopy.astra, options={
            "proj_type": "cuda", "method": method.tomopy_gpu, "num_iter": settings.iterations})
    else:
        kwargs["algorithm"] = method.tomopy
        if method.iterative:
            kwargs["num_iter"] = settings.iterations
        if method.subsets:
            kwargs["num_block"] = settings.subsets
    init = np.ones((data.shape[1], nx, nx), np.float32) if method.em else None
    rec = tomopy.recon(np.ascontiguousarray(data, np.float32), theta, init_recon=init, **kwargs)
    rec = rec.transpose(0, 2, 1) if transpose else rec       # (rows, z, x)
    start = (nx - nz) // 2
    return np.ascontiguousarray(rec[:, start:start + nz].transpose(1, 0, 2), dtype=np.float32)

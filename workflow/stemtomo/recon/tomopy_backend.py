"""TomoPy as a reconstruction backend (conda-forge only; not on PyPI), for pipelines built on it.

TomoPy reconstructs whole slices itself (its own MLEM/OSEM/SIRT/gridrec on the CPU, or ASTRA's
EM_CUDA/SIRT_CUDA through `tomopy.astra` on a GPU), so it is an alternative to the projector loop
rather than a projector. Its sinogram layout (angle, slice, detector) is stemtomo's (tilt, y, u).
How its geometry maps onto stemtomo's (read from TomoPy 1.15.2's C code, checked by `orientation`
at first use and by tests/test_tomopy.py against the projector loop):

- Rotation centre: TomoPy's ray tracer puts detector pixel d at d + ½ − center from the axis
  (libtomo's `preprocessing`), so the axis through stemtomo's detector centre (n − 1)/2 is
  `center = n / 2`, not (n − 1)/2 (half a pixel off: it fails the orientation check).
  `tomopy.astra` offsets ASTRA's detector by center − n/2, so the same `center = n / 2` is no
  offset there, on the CPU and on the GPU alike.
- Angles: TomoPy's θ is stemtomo's −θ. Grid: `recon` returns (rows, num_gridx, num_gridy) =
  (rows, z, x), so `height` is num_gridx — the grid is the support, as with stemtomo's projectors.
- gridrec: its Fourier grid puts the image origin at pixel (⌊nz/2⌋ − 1, ⌈nx/2⌉), not at
  ((nz − 1)/2, (nx − 1)/2), it pads only to the next power of two (its ramp filter
  wraps), weights every angle π/n_angles and scales by a constant ≈ 1.12; `_gridrec` corrects all
  four so that `fbp` means the same volume on every backend.
- EM: TomoPy divides data by (estimate + FLT_MIN); where a voxel reached exactly 0 (all of its rays
  zero in a subset) the next positive ray gives inf · 0 = NaN. EM data get a floor of
  EM_FLOOR × the row's maximum (at most that much bias); all-zero rows are zero without TomoPy.
"""

from __future__ import annotations

import functools

import numpy as np
from tqdm import tqdm

from ..align.registration import fourier_shift
from ..tomo.algorithms import fbp, interleaved_subsets, tilt_widths
from ..tomo.projectors import make_projector
from .settings import ReconstructSettings

EM_FLOOR = 1e-6
# stemtomo's FBP windows as TomoPy gridrec filters (filters.c: x in cycles/px, |2x| ramp;
# hann's parameter is its cut-off: 1.0 gives 0.5 + 0.5·cos 2πx like stemtomo's).
GRIDREC_FILTERS = {"ram-lak": ("ramlak", 1.0), "hann": ("hann", 1.0), "shepp-logan": ("shepp", 1.0)}


def centre(nx: int) -> float:
    """TomoPy's `center` for an axis through stemtomo's detector centre (n − 1)/2 (see above)."""
    return nx / 2


@functools.cache
def orientation() -> int:
    """TomoPy's angle sign relative to stemtomo's, found by projecting an asymmetric object with
    tomopy.project and with joseph-cpu. Its grid's first axis must be z (so that num_gridx is the
    height); a TomoPy whose geometry differs fails clearly instead of reconstructing wrongly."""
    import tomopy

    n = 33
    obj = np.zeros((1, n, n), np.float32)
    obj[0, 6:10, 20:24] = 1.0
    obj[0, 22:24, 8:15] = 2.0
    angles = np.array([-50.0, -20.0, 15.0, 40.0])
    ours = make_projector("joseph-cpu", angles, (n, 1, n)).forward(obj.transpose(1, 0, 2))[:, 0]
    scores = {}
    for sign in (1, -1):
        for transpose in (False, True):
            src = obj.transpose(0, 2, 1) if transpose else obj
            theirs = tomopy.project(src, sign * np.deg2rad(angles), center=centre(n), pad=False)
            scores[sign, transpose] = np.corrcoef(theirs[:, 0].ravel(), ours.ravel())[0, 1]
    (sign, transpose), best = max(scores.items(), key=lambda item: item[1])
    if best < 0.99 or transpose:
        raise RuntimeError(f"TomoPy {tomopy.__version__}'s geometry could not be matched to "
                           f"stemtomo's (r = {best:.3f}, transposed: {transpose}); use another "
                           "reconstruct.backend")
    return sign


def reconstruct_tomopy(data: np.ndarray, angles: np.ndarray, nz: int,
                       settings: ReconstructSettings, gpu: bool, threads: int = 1,
                       progress: bool = False) -> np.ndarray:
    """(tilt, rows, x) → (nz, rows, x) volume with TomoPy on `threads` cores; EM data must be
    non-negative (the caller clips them)."""
    method = settings.method
    nx = data.shape[2]
    data = np.ascontiguousarray(data, np.float32)
    volume = np.zeros((data.shape[1], nz, nx), np.float32)      # TomoPy's (rows, z, x)
    rows = np.flatnonzero(data.max(axis=(0, 2)) > 0) if method.em else np.arange(data.shape[1])
    if len(rows):  # (EM of an all-zero row is zero: such rows stay out of TomoPy's 0/0)
        data = data[:, rows]
        if method.em:  # a floor against TomoPy's NaN (module docstring); per row: slab-invariant
            data = np.maximum(data, EM_FLOOR * data.max(axis=(0, 2), keepdims=True))
        theta = orientation() * np.deg2rad(angles)
        if method.tomopy == "gridrec":
            volume[rows] = _gridrec(data, angles, theta, nz, settings.fbp_window, threads)
        else:
            volume[rows] = _iterate(data, theta, nz, settings, gpu, threads, progress)
    return np.ascontiguousarray(volume.transpose(1, 0, 2))


def _iterate(data: np.ndarray, theta: np.ndarray, nz: int, settings: ReconstructSettings,
             gpu: bool, threads: int, progress: bool) -> np.ndarray:
    """TomoPy's iterative algorithms. On the CPU one iteration per call (each iteration depends
    only on the previous estimate, so this is the same result): that gives a progress bar and lets
    SIRT be projected onto x ≥ 0 after every iteration like stemtomo's (TomoPy's own is not)."""
    import tomopy

    method = settings.method
    kwargs = recon_kwargs(settings, nz, data.shape[2], len(theta), gpu, threads)
    start = np.ones if method.em else np.zeros  # EM needs a positive start; SIRT starts at 0
    rec = start((data.shape[1], nz, data.shape[2]), np.float32)
    if kwargs["algorithm"] is tomopy.astra:  # all iterations in ASTRA (MinConstraint for SIRT)
        return tomopy.recon(data, theta, init_recon=rec, **kwargs)
    for _ in tqdm(range(settings.iterations), desc=f"TomoPy {method.tomopy}", unit="it",
                  disable=not progress):
        rec = tomopy.recon(data, theta, init_recon=rec, **kwargs)
        if not method.em:
            np.maximum(rec, 0, out=rec)
    return rec


def recon_kwargs(settings: ReconstructSettings, nz: int, nx: int, n_tilts: int, gpu: bool,
                 threads: int) -> dict:
    """tomopy.recon's arguments for one call: the whole run through tomopy.astra on a GPU, one
    iteration of TomoPy's own algorithm otherwise (ALGORITHMS table names both)."""
    import tomopy

    method = settings.method
    kwargs = {"center": centre(nx), "sinogram_order": False, "ncore": max(1, threads),
              "num_gridx": nz, "num_gridy": nx}
    if gpu and method.tomopy_gpu:
        extra = {} if method.em else {"MinConstraint": 0.0}  # stemtomo's SIRT is non-negative
        kwargs.update(algorithm=tomopy.astra, options={
            "proj_type": "cuda", "method": method.tomopy_gpu, "num_iter": settings.iterations,
            "extra_options": extra})
        return kwargs
    kwargs.update(algorithm=method.tomopy, num_iter=1)
    if method.subsets:  # interleaved by angle like stemtomo's OSEM (TomoPy's default: contiguous)
        blocks = interleaved_subsets(n_tilts, settings.subsets)
        kwargs.update(num_block=len(blocks), ind_block=np.concatenate(blocks).astype(np.int32))
    return kwargs


def _gridrec(data: np.ndarray, angles: np.ndarray, theta: np.ndarray, nz: int, window: str,
             threads: int, gain: float | None = None) -> np.ndarray:
    """stemtomo's FBP through TomoPy's gridrec: padded like `ramp_filter` (zeros to 2^⌈log2 2n⌉),
    each tilt weighted by the angle it stands for (as `fbp`), the image origin moved onto stemtomo's
    centre by a per-tilt detector shift, and gridrec's constant gain divided out."""
    import tomopy

    nt, rows, nx = data.shape
    width = int(2 ** np.ceil(np.log2(max(2 * nx, nz, 16))))
    left = (width - nx) // 2
    padded = np.zeros((nt, rows, width), np.float32)
    padded[:, :, left:left + nx] = data
    # gridrec's image origin (gridrec.c, phase 3: rows reversed) minus stemtomo's centre, (z, x):
    dz = (nz - 1 - (width // 2 - (width - nz) // 2)) - (nz - 1) / 2
    dx = (width // 2 - (width - nx) // 2) - (nx - 1) / 2
    th = np.deg2rad(angles)
    shift = -(dx * np.cos(th) + dz * np.sin(th))  # projections of the object moved by −(dz, dx)
    padded = fourier_shift(padded, shift[:, None, None]).astype(np.float32)
    gain = gridrec_gain() if gain is None else gain
    padded *= (tilt_widths(th) * nt / np.pi / gain)[:, None, None].astype(np.float32)
    name, cutoff = GRIDREC_FILTERS[window]
    return tomopy.recon(padded, theta, center=left + (nx - 1) / 2, algorithm="gridrec",
                        sinogram_order=False, ncore=max(1, threads), filter_name=name,
                        filter_par=[cutoff, 8.0], num_gridx=nz, num_gridy=nx)


@functools.cache
def gridrec_gain() -> float:
    """gridrec's scale relative to stemtomo's FBP (≈ 1.12 in TomoPy 1.15.2: a disc of density 1
    comes out 1.11 from TomoPy's own projections too), measured once on the core of a disc."""
    n, radius = 64, 8.0
    z, x = (a - (n - 1) / 2 for a in np.ogrid[:n, :n])
    disc = (z**2 + x**2 <= radius**2).astype(np.float32)[:, None]
    core = np.broadcast_to((z**2 + x**2 <= (radius / 2) ** 2)[:, None], disc.shape)
    angles = np.arange(128) * 180 / 128 - 90
    projector = make_projector("joseph-cpu", angles, disc.shape)
    data = projector.forward(disc)
    ours = fbp(projector, data, "ram-lak").volume
    theirs = _gridrec(data, angles, orientation() * np.deg2rad(angles), n, "ram-lak", 1, gain=1.0)
    theirs = theirs.transpose(1, 0, 2)  # TomoPy's (rows, z, x) → (z, rows, x)
    return float(theirs[core].mean() / ours[core].mean())

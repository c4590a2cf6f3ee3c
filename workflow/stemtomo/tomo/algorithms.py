"""Reconstruction algorithms over the projector interface (stemtomo.tomo.projectors): SIRT and
OS-SIRT, CGLS, MLEM/OSEM (one loop for NumPy arrays and torch CUDA tensors), FBP; shared by the
alignment (projection matching, offset search) and the reconstruct stage."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ..core.errors import InputError
from .projectors import Projector

EPS = 1e-6


@dataclass
class Reconstruction:
    volume: np.ndarray
    residuals: list[float] = field(default_factory=list)  # ‖Ax − y‖ / ‖y‖ per iteration


def interleaved_subsets(n_tilts: int, subsets: int) -> list[np.ndarray]:
    """Tilt indices split into subsets interleaved by angle (0, k, 2k, …), so each subset spans
    the whole tilt range (Hudson & Larkin 1994)."""
    subsets = max(1, min(subsets, n_tilts))
    return [np.arange(s, n_tilts, subsets) for s in range(subsets)]


MIN_SPLIT_TILTS = 4  # Noise2Inverse: fewer tilts per subset give sub-volumes that are mostly streaks


def split_tilts(n_tilts: int, splits: int, key: str = "denoise.splits",
                counted: str = "") -> list[np.ndarray]:
    """K disjoint subsets of the tilt indices 0..n-1, interleaved by angle (0, K, 2K, …), that
    together cover every tilt (Noise2Inverse's sub-reconstructions); `counted` says where the tilt
    count came from, for the error."""
    most = n_tilts // MIN_SPLIT_TILTS
    if not 2 <= splits <= most:
        fix = (f"use between 2 and {most} splits" if most > 2 else "use 2 splits") if most >= 2 \
            else f"the series needs at least {2 * MIN_SPLIT_TILTS} tilts: set denoise.enabled: false"
        raise InputError(key, f"{splits} splits of {n_tilts} tilts{counted}: Noise2Inverse needs "
                         f"at least 2 subsets of at least {MIN_SPLIT_TILTS} tilts each", fix)
    return interleaved_subsets(n_tilts, splits)


def subset_projectors(projector: Projector, subsets: int) -> list[tuple[np.ndarray, Projector]]:
    """(tilt indices, projector restricted to them) per interleaved subset; the projector itself
    when there is one subset."""
    return [(tilts, projector if subsets == 1 else projector.subset(tilts))
            for tilts in interleaved_subsets(len(projector.angles), subsets)]


def sirt(projector: Projector, data: np.ndarray, iterations: int, x0: np.ndarray | None = None,
         nonnegative: bool = True, subsets: int = 1, progress: bool = False) -> Reconstruction:
    """SIRT (Gilbert 1972; row/column-sum normalised Landweber): x ← x + C·Aᵀ·R·(y − A·x).

    With subsets > 1 each iteration sweeps the ordered subsets (OS-SIRT), one update per subset.
    Residuals: ‖Ax − y‖/‖y‖ of the estimate after each iteration with one subset (the next
    iteration's projection serves, one more at the end); with subsets, the cheaper misfit of each
    subset as it is visited (x changes in between), fit only to compare runs of the same procedure
    (alignment uses it so).
    """
    y = np.asarray(data, dtype=np.float32)
    parts = []
    for tilts, p in subset_projectors(projector, subsets):
        row = p.forward(np.ones(p.volume_shape, np.float32))
        col = p.back(np.ones(p.projection_shape, np.float32))
        parts.append((tilts, p, np.where(row > EPS, 1.0 / np.maximum(row, EPS), 0.0).astype(np.float32),
                      np.where(col > EPS, 1.0 / np.maximum(col, EPS), 0.0).astype(np.float32)))
    x = np.zeros(projector.volume_shape, np.float32) if x0 is None else x0.astype(np.float32)
    norm = float(np.linalg.norm(y)) or 1.0
    residuals = []
    for it in tqdm(range(iterations), desc="SIRT", unit="it", disable=not progress):
        sq = 0.0
        for tilts, p, r_inv, c_inv in parts:
            diff = y[tilts] - p.forward(x)
            sq += float(np.sum(diff.astype(np.float64) ** 2))
            x += c_inv * p.back(r_inv * diff)
            if nonnegative:
                np.maximum(x, 0, out=x)
        if subsets > 1 or it > 0:  # with one subset: the previous iteration's result, projected
            residuals.append(np.sqrt(sq) / norm)
    if subsets == 1 and iterations:
        residuals.append(float(np.linalg.norm(projector.forward(x) - y)) / norm)
    return Reconstruction(x, residuals)


def cgls(projector: Projector, data: np.ndarray, iterations: int,
         progress: bool = False) -> Reconstruction:
    """Conjugate gradients on the normal equations AᵀA x = Aᵀy (Hestenes & Stiefel 1952; Björck
    1996): least squares without constraints, converging far faster than SIRT."""
    back = projector.back
    y = np.asarray(data, dtype=np.float32)
    x = np.zeros(projector.volume_shape, np.float32)
    r = y.copy()
    s = back(r)
    p = s.copy()
    gamma = float(np.vdot(s, s))
    norm = float(np.linalg.norm(y)) or 1.0
    residuals = []
    for _ in tqdm(range(iterations), desc="CGLS", unit="it", disable=not progress):
        q = projector.forward(p)
        qq = float(np.vdot(q, q))
        if qq == 0 or gamma == 0:
            break
        alpha = gamma / qq
        x += alpha * p
        r -= alpha * q
        residuals.append(float(np.linalg.norm(r)) / norm)
        s = back(r)
        gamma_new = float(np.vdot(s, s))
        p = s + (gamma_new / gamma) * p
        gamma = gamma_new
    return Reconstruction(x, residuals)


class _Ops:
    """The few array operations the EM loop needs, for NumPy arrays or torch tensors, so that one
    loop serves CPU projectors and the GPU projector without leaving the GPU."""

    def __init__(self, like) -> None:
        self.torch = type(like).__module__.split(".")[0] == "torch"
        self.like = like

    def ones(self, shape):
        if self.torch:
            import torch

            return torch.ones(shape, dtype=torch.float32, device=self.like.device)
        return np.ones(shape, np.float32)

    def array(self, a):
        if self.torch and not type(a).__module__.startswith("torch"):
            import torch

            return torch.as_tensor(np.asarray(a, np.float32), device=self.like.device)
        return a if self.torch else np.asarray(a, np.float32)

    def floor(self, a, eps: float):
        return a.clamp(min=eps) if self.torch else np.maximum(a, eps)

    def reciprocal(self, a):
        return self.floor(a, EPS).reciprocal() * (a > EPS) if self.torch else \
            np.where(a > EPS, 1.0 / np.maximum(a, EPS), 0.0).astype(np.float32)

    def sumsq(self, a) -> float:
        return float((a.double() ** 2).sum()) if self.torch else float(np.sum(a.astype(np.float64) ** 2))

    def finite(self, a) -> bool:
        return bool(a.isfinite().all()) if self.torch else bool(np.all(np.isfinite(a)))


def mlem(projector: Projector, data, iterations: int, subsets: int = 1, x0=None, mask=None,
         progress: bool = False) -> Reconstruction:
    """MLEM (Shepp & Vardi 1982) and, with subsets > 1, OSEM (Hudson & Larkin 1994) in one loop:
    x ← x · Aₛᵀ(yₛ / Aₛx) / Aₛᵀ1 for each subset s of interleaved tilts.

    Needs non-negative data and a non-negative start with positive voxels (a zero voxel never
    changes under a multiplicative update, so MLEM's own result continues it). `mask`
    (broadcastable, 0/1) confines the volume, e.g. to a cylinder.
    Data may be a NumPy array or a torch CUDA tensor (with the astra-gpu projector): the loop then
    runs on the GPU without host round-trips. Residuals are ‖Ax − y‖/‖y‖ of the estimate after
    each iteration: MLEM takes it from the next iteration's projection (one more at the end);
    OSEM projects the whole series once more per iteration for it (x changes between subsets, so
    the subsets' own misfits belong to no single estimate).
    """
    ops = _Ops(data)
    y = ops.array(data)
    if not ops.finite(y):
        raise ValueError("MLEM data contain NaN or Inf")
    if float(y.min()) < 0:
        raise ValueError("MLEM needs non-negative data; subtract the background and clip first")
    if x0 is None:
        x = ops.ones(projector.volume_shape)
    else:
        x = ops.array(np.array(x0, dtype=np.float32))
        if float(x.min()) < 0 or not float(x.max()) > 0:
            raise ValueError("EM needs a non-negative start with positive voxels (a zero voxel "
                             "never changes: give those the object may occupy a positive value)")
    if mask is not None:
        mask = ops.array(mask)
        x *= mask
    parts = []
    for tilts, p in subset_projectors(projector, subsets):
        sens = p.back(ops.ones(p.projection_shape))
        parts.append((y[tilts] if subsets > 1 else y, p, ops.reciprocal(sens)))
    norm = np.sqrt(ops.sumsq(y)) or 1.0
    residuals = []

    def misfit(estimate, target) -> float:
        return float(np.sqrt(ops.sumsq(estimate - target)) / norm)

    for it in tqdm(range(iterations), desc="OSEM" if subsets > 1 else "MLEM", unit="it",
                   disable=not progress):
        for ys, p, inv_sens in parts:
            estimate = p.forward(x)
            if subsets == 1 and it > 0:  # the previous iteration's result, projected
                residuals.append(misfit(estimate, ys))
            x *= p.back(ys / ops.floor(estimate, EPS)) * inv_sens
            if mask is not None:
                x *= mask
        if subsets > 1:
            residuals.append(misfit(projector.forward(x), y))
    if subsets == 1 and iterations:
        residuals.append(misfit(projector.forward(x), y))
    return Reconstruction(x, residuals)


def ramp_filter(projections: np.ndarray, window: str = "hann") -> np.ndarray:
    """Filter projections (…, u) with |k| (cycles/px), apodised, zero-padded to avoid wrap-around."""
    n = projections.shape[-1]
    pad = int(2 ** np.ceil(np.log2(2 * n)))
    k = np.abs(np.fft.rfftfreq(pad))
    apod = {"ram-lak": np.ones_like(k), "hann": 0.5 + 0.5 * np.cos(2 * np.pi * k),
            "shepp-logan": np.sinc(k)}[window]
    spec = np.fft.rfft(projections, n=pad, axis=-1) * (k * apod)
    return np.fft.irfft(spec, n=pad, axis=-1)[..., :n].astype(np.float32)


def tilt_widths(angles_rad: np.ndarray) -> np.ndarray:
    """The angular interval (rad) each tilt stands for: half the gap to each neighbour, the gap at
    the ends; a lone tilt stands for the half-turn."""
    th = np.asarray(angles_rad, dtype=float)
    order = np.argsort(th)
    widths = np.empty_like(th)
    widths[order] = np.gradient(th[order]) if len(th) > 1 else np.pi
    return widths


def fbp(projector: Projector, data: np.ndarray, window: str = "hann") -> Reconstruction:
    """Filtered backprojection (parallel beam): Σᵢ Δθᵢ · Aᵀ(ramp ∗ pᵢ), with Δθᵢ the angular
    interval each tilt represents (tilt_widths), so limited and uneven tilt ranges are weighted
    correctly."""
    y = np.asarray(data, dtype=np.float32)
    widths = tilt_widths(np.deg2rad(projector.angles))
    filtered = ramp_filter(y, window) * widths[:, None, None].astype(np.float32)
    x = projector.back(filtered)
    resid = np.linalg.norm(projector.forward(x) - y) / (np.linalg.norm(y) or 1.0)
    return Reconstruction(x, [float(resid)])


def cylinder_mask(nz: int, nx: int) -> np.ndarray:
    """(nz, 1, nx) mask of the cylinder about the tilt axis inscribed in the detector width: only
    voxels seen at every tilt."""
    z = np.arange(nz) - (nz - 1) / 2
    x = np.arange(nx) - (nx - 1) / 2
    return ((z[:, None] ** 2 + x[None, :] ** 2) <= (nx / 2) ** 2).astype(np.float32)[:, None, :]

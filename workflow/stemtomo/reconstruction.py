"""Iterative reconstruction over the projector interface (stemtomo.projectors)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

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


def sirt(projector: Projector, data: np.ndarray, iterations: int, x0: np.ndarray | None = None,
         nonnegative: bool = True, subsets: int = 1, progress: bool = False) -> Reconstruction:
    """SIRT (Gilbert 1972; row/column-sum normalised Landweber): x ← x + C·Aᵀ·R·(y − A·x).

    With subsets > 1 each iteration sweeps the ordered subsets (OS-SIRT), one update per subset.
    """
    y = np.asarray(data, dtype=np.float32)
    parts = []
    for tilts in interleaved_subsets(len(projector.angles), subsets):
        p = projector if subsets == 1 else projector.subset(tilts)
        row = p.forward(np.ones(p.volume_shape, np.float32))
        col = p.back(np.ones(p.projection_shape, np.float32))
        parts.append((tilts, p, np.where(row > EPS, 1.0 / np.maximum(row, EPS), 0.0).astype(np.float32),
                      np.where(col > EPS, 1.0 / np.maximum(col, EPS), 0.0).astype(np.float32)))
    x = np.zeros(projector.volume_shape, np.float32) if x0 is None else x0.astype(np.float32)
    norm = float(np.linalg.norm(y)) or 1.0
    residuals = []
    for _ in tqdm(range(iterations), desc="SIRT", unit="it", disable=not progress):
        sq = 0.0
        for tilts, p, r_inv, c_inv in parts:
            diff = y[tilts] - p.forward(x)
            sq += float(np.sum(diff.astype(np.float64) ** 2))
            x += c_inv * p.back(r_inv * diff)
            if nonnegative:
                np.maximum(x, 0, out=x)
        residuals.append(np.sqrt(sq) / norm)
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

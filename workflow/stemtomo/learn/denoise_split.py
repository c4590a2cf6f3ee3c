"""The sub-reconstructions of Noise2Inverse (Hendriksen, Pelt & Batenburg, IEEE TCI 2020): the
tilt series split into K disjoint subsets interleaved by angle, each reconstructed by the reconstruct
stage's own code with its algorithm and iterations. Projection noise is independent between tilts,
so the sub-volumes carry independent noise over the same object.

NumPy and the reconstruction library only (the rule runs in the reconstruction's env)."""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..recon.reconstruct import reconstruct
from ..recon.settings import ReconstructSettings
from ..tomo.algorithms import interleaved_subsets

MIN_TILTS = 4  # fewer tilts per subset give sub-volumes that are mostly streaks


def split_tilts(n_tilts: int, splits: int, key: str = "denoise.splits") -> list[np.ndarray]:
    """K disjoint subsets of the tilt indices 0..n-1, interleaved by angle (0, K, 2K, …), that
    together cover every tilt; each spans the whole tilt range."""
    if not 2 <= splits <= n_tilts // MIN_TILTS:
        raise InputError(key, f"{splits} splits of {n_tilts} tilts: Noise2Inverse needs at least 2 "
                         f"subsets of at least {MIN_TILTS} tilts each",
                         f"use between 2 and {n_tilts // MIN_TILTS} splits" if n_tilts >= 2 * MIN_TILTS
                         else f"the series needs at least {2 * MIN_TILTS} tilts: set denoise.enabled: false")
    return interleaved_subsets(n_tilts, splits)


def reconstruct_split(stack: np.ndarray, angles: np.ndarray, settings: ReconstructSettings,
                      split: int, splits: int, rows: tuple[int, int] | None = None,
                      threads: int = 1, source: str = "tilt series",
                      progress: bool = False) -> tuple[np.ndarray, dict]:
    """Rows [start, stop) of the sub-reconstruction from tilt subset `split` of `splits`, with the
    settings of the main reconstruction. Returns the (nz, rows, nx) volume and its record (that of
    recon.reconstruct, plus the subset's tilt indices and angles)."""
    if not 0 <= split < splits:
        raise InputError(source, f"split {split} of {splits} does not exist",
                         f"ask for a split between 0 and {splits - 1}")
    if len(angles) != stack.shape[0]:
        raise InputError(source, f"{stack.shape[0]} images but {len(angles)} angles",
                         "rerun the align stage so that the series and its .tlt agree")
    tilts = split_tilts(len(angles), splits)[split]
    volume, record = reconstruct(stack[tilts], np.asarray(angles)[tilts], settings, rows=rows,
                                 threads=threads, source=source, progress=progress)
    record.update(split=split, splits=splits, tilts=tilts.tolist(),
                  angles=[round(float(a), 4) for a in np.asarray(angles)[tilts]])
    return volume, record

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
from ..tomo.algorithms import split_tilts

__all__ = ["reconstruct_split", "split_tilts"]


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

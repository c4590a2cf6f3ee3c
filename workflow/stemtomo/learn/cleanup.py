"""Clean-up of a segmentation: physically impossible small components removed.

- γ-alumina: the support is one aggregate; an alumina component (26-connected) smaller than
  `alumina_min_nm3` is not part of it (typically the blurred rim of a Pt particle or a noise
  blob in a pore) and becomes background.
- Pt: a component (6-connected, as evaluate.particles counts particles) smaller than `pt_min_nm3`
  is a speck below any real particle; it takes the most common label of its one-voxel shell
  (alumina when it sits in the support, background in a pore).

NumPy/SciPy only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.labels import ALUMINA, BACKGROUND, CLASSES, PT

SIX = ndimage.generate_binary_structure(3, 1)
TWENTY_SIX = np.ones((3, 3, 3), bool)


def small_components(mask: np.ndarray, min_voxels: float,
                     structure: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(component ids, mask of the components with fewer than `min_voxels` voxels, their
    number)."""
    ids, n = ndimage.label(mask, structure=structure)
    if n == 0 or min_voxels <= 0:
        return ids, np.zeros(mask.shape, bool), 0
    sizes = np.bincount(ids.ravel(), minlength=n + 1)
    small = sizes < min_voxels
    small[0] = False
    return ids, small[ids], int(small.sum())


def _shell_majority(labels: np.ndarray, ids: np.ndarray, exclude: int) -> np.ndarray:
    """For each component id (> 0): the most common label among the voxels 6-adjacent to it,
    `exclude` left out (background where the shell holds nothing else)."""
    padded = np.pad(labels, 1, constant_values=exclude)  # outside the volume never votes
    inner = (slice(1, -1),) * 3
    votes = np.zeros((int(ids.max()) + 1, len(CLASSES)), np.int64)
    for axis in range(3):
        for shift in (1, -1):
            neighbour = np.roll(padded, shift, axis=axis)[inner]
            voting = (ids > 0) & (neighbour != exclude)
            np.add.at(votes, (ids[voting], neighbour[voting].astype(np.intp)), 1)
    return votes.argmax(axis=1)  # all-zero rows: 0 = background


def clean_labels(labels: np.ndarray, voxel_nm: float, alumina_min_nm3: float,
                 pt_min_nm3: float) -> tuple[np.ndarray, dict]:
    """The cleaned label volume and a record of what was removed (components and voxels)."""
    out = labels.copy()
    vox = voxel_nm**3
    _, alumina, n_alumina = small_components(out == ALUMINA, alumina_min_nm3 / vox, TWENTY_SIX)
    out[alumina] = BACKGROUND
    ids, pt, n_pt = small_components(out == PT, pt_min_nm3 / vox, SIX)
    if n_pt:
        ids = np.where(pt, ids, 0)
        fill = _shell_majority(out, ids, PT)
        out[pt] = fill[ids[pt]].astype(out.dtype)
    return out, {"alumina_min_nm3": alumina_min_nm3, "pt_min_nm3": pt_min_nm3,
                 "alumina_components_removed": n_alumina,
                 "alumina_voxels_removed": int(alumina.sum()),
                 "pt_components_removed": n_pt, "pt_voxels_removed": int(pt.sum())}

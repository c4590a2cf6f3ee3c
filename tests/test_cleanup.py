"""Clean-up of segmentations: exactly the small γ-alumina and Pt components go, and what takes
their place."""

from __future__ import annotations

import numpy as np

from stemtomo.core.labels import ALUMINA, BACKGROUND, PT
from stemtomo.learn.cleanup import clean_labels


def scene() -> np.ndarray:
    """A support slab with small alumina fragments, Pt specks and real particles (0.5 nm voxels:
    one voxel is 0.125 nm³)."""
    labels = np.zeros((12, 24, 24), np.uint8)
    labels[2:8, 2:14, 2:14] = ALUMINA                # the support, 864 voxels
    labels[5, 18, 18] = ALUMINA                       # fragment of 1 voxel
    labels[9, 18, 2], labels[10, 19, 3] = ALUMINA, ALUMINA  # 2 voxels, diagonal (26-connected)
    labels[2:4, 18:20, 10:12] = ALUMINA               # 8 voxels = 1 nm³
    labels[5, 20, 5] = PT                             # Pt speck in a pore: 1 voxel
    labels[4, 4:6, 4] = PT                            # Pt speck inside the support: 2 voxels
    labels[8:10, 8:10, 8:10] = PT                     # a particle on the support: 8 voxels
    labels[8, 2, 12], labels[9, 3, 13] = PT, PT       # two diagonal voxels: two 6-components
    return labels


def test_cleanup_removes_exactly_the_small_components():
    labels = scene()
    out, record = clean_labels(labels, 0.5, alumina_min_nm3=1.0, pt_min_nm3=0.3)
    changed = np.argwhere(out != labels).tolist()
    assert sorted(changed) == sorted([[5, 18, 18], [9, 18, 2], [10, 19, 3], [5, 20, 5],
                                      [4, 4, 4], [4, 5, 4], [8, 2, 12], [9, 3, 13]])
    assert out[5, 18, 18] == out[9, 18, 2] == out[10, 19, 3] == BACKGROUND  # loose fragments
    assert out[5, 20, 5] == BACKGROUND  # a speck in a pore: its surroundings
    assert out[4, 4, 4] == out[4, 5, 4] == ALUMINA  # a speck in the support: the support
    assert out[8, 2, 12] == BACKGROUND  # touches the support on one face, vacuum on five
    assert (out[2:4, 18:20, 10:12] == ALUMINA).all()  # 1 nm³ is not below 1 nm³
    assert (out[8:10, 8:10, 8:10] == PT).all()         # 1 nm³ particle kept
    assert record == {"alumina_min_nm3": 1.0, "pt_min_nm3": 0.3,
                      "alumina_components_removed": 2, "alumina_voxels_removed": 3,
                      "pt_components_removed": 4, "pt_voxels_removed": 5}


def test_zero_thresholds_keep_everything():
    labels = scene()
    out, record = clean_labels(labels, 0.5, 0.0, 0.0)
    assert np.array_equal(out, labels) and out is not labels
    assert record["alumina_components_removed"] == record["pt_components_removed"] == 0

"""Pt particles: 3D connected components of the Pt class (6-connectivity: diagonal contact does
not merge particles) with volume, equivalent diameter (6V/π)^(1/3), centroid and support contact
(the one-voxel 6-neighbour shell holds alumina); and one-to-one detection against the truth,
greedily by overlapping voxels (largest first, ≥ 1 shared voxel), counted over particles whose
centroid lies in the region. F1 = 0 when nothing matches (or only one side has particles), NaN
when neither has any."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.labels import ALUMINA, PT
from ..core.overlap import ratio

SIX = ndimage.generate_binary_structure(3, 1)
FOUR = np.pad(ndimage.generate_binary_structure(2, 1)[None], ((1, 1), (0, 0), (0, 0)))  # in-plane
PARTICLE_FIELDS = ["id", "voxels", "volume_nm3", "diameter_nm", "z_nm", "y_nm", "x_nm",
                   "touches_support"]


@dataclass
class Particles:
    labels: np.ndarray     # (z, y, x) int32 particle ids (0 = none), ids from 1
    table: list[dict]      # one row per particle, in id order


def particles(labels: np.ndarray, voxel_nm: float, planar: bool = False) -> Particles:
    """3D connected components of the Pt class with volume, size, centroid and support contact;
    `planar`: 2D components of each slice (a stack of unrelated images)."""
    structure = FOUR if planar else SIX
    ids, n = ndimage.label(labels == PT, structure=structure)
    if n == 0:
        return Particles(ids, [])
    index = np.arange(1, n + 1)
    counts = ndimage.sum_labels(np.ones_like(ids, np.int32), ids, index)
    centroids = np.array(ndimage.center_of_mass(ids > 0, ids, index)).reshape(n, 3)
    # a voxel of the support next to a particle: dilate the support once, look up the ids inside
    near_support = ndimage.binary_dilation(labels == ALUMINA, structure=structure)
    touching = np.zeros(n + 1, bool)
    touching[np.unique(ids[near_support & (ids > 0)])] = True
    table = []
    for i in range(n):
        volume = float(counts[i]) * voxel_nm**3
        z, y, x = centroids[i] * voxel_nm
        table.append({"id": i + 1, "voxels": int(counts[i]), "volume_nm3": round(volume, 3),
                      "diameter_nm": round(float((6 * volume / np.pi) ** (1 / 3)), 3),
                      "z_nm": round(float(z), 2), "y_nm": round(float(y), 2), "x_nm": round(float(x), 2),
                      "touches_support": bool(touching[i + 1])})
    return Particles(ids, table)


def match_particles(pred: Particles, truth: Particles, z_range: tuple[int, int] | None = None,
                    voxel_nm: float = 1.0) -> dict[str, float]:
    """One-to-one greedy matching by shared voxels; precision/recall/F1 over particles whose
    centroid lies in z_range = [start, stop) slices (the whole volume when None)."""
    def inside(table: list[dict]) -> set[int]:
        if z_range is None:
            return {r["id"] for r in table}
        return {r["id"] for r in table if z_range[0] <= r["z_nm"] / voxel_nm < z_range[1]}

    keep_p, keep_t = inside(pred.table), inside(truth.table)
    both = (pred.labels > 0) & (truth.labels > 0)
    pairs = np.stack([pred.labels[both], truth.labels[both]], axis=1)
    pairs_u, shared = np.unique(pairs, axis=0, return_counts=True) if len(pairs) else (pairs, [])
    used_p, used_t = set(), set()
    for k in np.argsort(-np.asarray(shared), kind="stable"):
        ip, it = int(pairs_u[k][0]), int(pairs_u[k][1])
        if ip not in used_p and it not in used_t:
            used_p.add(ip)
            used_t.add(it)
    n_p, n_t = len(keep_p), len(keep_t)
    precision, recall = ratio(len(keep_p & used_p), n_p), ratio(len(keep_t & used_t), n_t)
    if n_p and n_t:
        f1 = ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0
    else:  # found nothing, or found only false particles: 0; nothing to find or found: undefined
        f1 = 0.0 if n_p or n_t else float("nan")
    return {"particles_pred": n_p, "particles_true": n_t, "particles_matched": len(keep_t & used_t),
            "detection_precision": precision, "detection_recall": recall, "detection_f1": f1}

"""Evaluation: per-class overlap metrics and HD95 in nm (Pt particles: evaluate.particles).

Conventions (stated once, used everywhere):
- Only labelled voxels (truth != 255) inside the evaluation region count.
- Pooled metrics sum TP/FP/FN over the region. Per-slice metrics are the mean ± sd over z-slices
  where the class occurs in the truth or the prediction; a slice where it occurs in neither is
  skipped (counted in `slices_absent`), a slice where it occurs in only one scores 0.
- Dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN), precision = TP/(TP+FP), recall = TP/(TP+FN);
  NaN where the denominator is zero.
- HD95 (nm): boundaries are taken slice by slice (annotations are slices), in-plane distances use
  the voxel size; the distances from each boundary pixel of one mask to the nearest boundary pixel
  of the other, both directions pooled, give the 95th percentile (medpy's `hd95` convention).
  A boundary pixel in a slice where the other mask is empty is at distance inf, so a lone false
  (or missed) object counts by its size: the pooled HD95 is inf once such pixels exceed 5 %.
  NaN where the class is absent from both, inf where it is absent from only one.
- Particles: 3D connected components of the Pt class, 6-connectivity (diagonal contact does not
  merge particles); equivalent diameter = (6V/π)^(1/3); a particle touches the support when its
  one-voxel (6-neighbour) shell contains alumina.
- Detection: predicted and true particles are paired one-to-one, greedily by overlapping voxels
  (largest first); a pair needs ≥ 1 shared voxel. Precision = matched/predicted, recall =
  matched/true, over particles whose centroid lies in the region; F1 = 0 when nothing matches
  (or only one side has particles), NaN when neither has any.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core.labels import CLASSES, IGNORE
from ..core.overlap import confusion, overlap_scores


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def surface_distances(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Boundary-to-boundary distances (both directions) between two 2D masks, in spacing units."""
    bp, bt = _boundary(pred), _boundary(truth)
    if not bp.any() and not bt.any():
        return np.array([0.0])
    if not bp.any() or not bt.any():  # nothing to measure to: each lone boundary pixel is at inf
        return np.full(int(bp.sum() + bt.sum()), np.inf)
    to_t = ndimage.distance_transform_edt(~bt, sampling=spacing)[bp]
    to_p = ndimage.distance_transform_edt(~bp, sampling=spacing)[bt]
    return np.concatenate([to_t, to_p])


def hd95(distances: np.ndarray) -> float:
    if not len(distances):
        return float("nan")
    # interpolation between inf and a finite value is undefined: take the order statistic then
    method = "linear" if np.isfinite(distances).all() else "higher"
    return float(np.percentile(distances, 95, method=method))


def class_metrics(pred: np.ndarray, truth: np.ndarray, voxel_nm: float,
                  classes: tuple[int, ...] = CLASSES) -> dict[int, dict]:
    """Pooled and per-slice metrics of each class over the labelled voxels of (z, y, x) maps."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    out = {}
    for c in classes:
        tp = fp = fn = 0
        per_slice: dict[str, list[float]] = {"dice": [], "iou": [], "precision": [], "recall": [],
                                            "hd95_nm": []}
        pooled_d, absent = [], 0
        for z in range(truth.shape[0]):
            valid = truth[z] != IGNORE
            if not valid.any():
                continue
            p, t = (pred[z] == c) & valid, (truth[z] == c) & valid
            s_tp, s_fp, s_fn = confusion(pred[z], truth[z], c)
            tp, fp, fn = tp + s_tp, fp + s_fp, fn + s_fn
            if not p.any() and not t.any():
                absent += 1
                continue
            d = surface_distances(p, t, (voxel_nm, voxel_nm))
            pooled_d.append(d)
            for k, v in overlap_scores(s_tp, s_fp, s_fn).items():
                per_slice[k].append(v)
            per_slice["hd95_nm"].append(hd95(d))
        row = overlap_scores(tp, fp, fn)
        row["hd95_nm"] = hd95(np.concatenate(pooled_d)) if pooled_d else float("nan")
        for k, values in per_slice.items():
            v = np.array(values, float)
            finite = v[np.isfinite(v)]
            row[f"{k}_slice_mean"] = float(finite.mean()) if finite.size else float("nan")
            row[f"{k}_slice_sd"] = float(finite.std()) if finite.size else float("nan")
        row.update(voxels_true=tp + fn, voxels_pred=tp + fp, slices=len(per_slice["dice"]),
                   slices_absent=absent)
        out[c] = row
    return out

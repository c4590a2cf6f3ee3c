"""Evaluation: per-class overlap metrics, HD95 in nm, Pt particle statistics and detection.

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

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .patches import IGNORE, class_counts
from .phantom import CLASS_NAMES

TABLE_COLUMNS = ((1, "γ-Alumina"), (2, "Pt NPs"), (0, "Background/pores"))
SIX = ndimage.generate_binary_structure(3, 1)
PARTICLE_FIELDS = ["id", "voxels", "volume_nm3", "diameter_nm", "z_nm", "y_nm", "x_nm",
                   "touches_support"]


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else float("nan")


def overlap_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    return {"dice": _ratio(2 * tp, 2 * tp + fp + fn), "iou": _ratio(tp, tp + fp + fn),
            "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn)}


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
                  classes: tuple[int, ...] = (0, 1, 2)) -> dict[int, dict]:
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
            s_tp, s_fp, s_fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
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


@dataclass
class Particles:
    labels: np.ndarray     # (z, y, x) int32 particle ids (0 = none), ids from 1
    table: list[dict]      # one row per particle, in id order


def particles(labels: np.ndarray, voxel_nm: float, pt: int = 2, support: int = 1) -> Particles:
    """3D connected components of the Pt class with volume, size, centroid and support contact."""
    ids, n = ndimage.label(labels == pt, structure=SIX)
    if n == 0:
        return Particles(ids, [])
    index = np.arange(1, n + 1)
    counts = ndimage.sum_labels(np.ones_like(ids, np.int32), ids, index)
    centroids = np.array(ndimage.center_of_mass(ids > 0, ids, index)).reshape(n, 3)
    # a voxel of the support next to a particle: dilate the support once, look up the ids inside
    near_support = ndimage.binary_dilation(labels == support, structure=SIX)
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
    precision, recall = _ratio(len(keep_p & used_p), n_p), _ratio(len(keep_t & used_t), n_t)
    if n_p and n_t:
        f1 = _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0
    else:  # found nothing, or found only false particles: 0; nothing to find or found: undefined
        f1 = 0.0 if n_p or n_t else float("nan")
    return {"particles_pred": n_p, "particles_true": n_t, "particles_matched": len(keep_t & used_t),
            "detection_precision": precision, "detection_recall": recall, "detection_f1": f1}


def volume_fractions(labels: np.ndarray) -> dict[str, float]:
    counts = class_counts(labels)
    total = counts.sum() or 1
    return {f"fraction_{CLASS_NAMES[c]}": float(counts[c] / total) for c in range(3)}


def fmt(mean: float, sd: float | None = None, digits: int = 3) -> str:
    """A table cell: '—' for undefined values (NaN), mean or mean ± sd otherwise."""
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" if sd is None or not np.isfinite(sd) else \
        f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _hd(v: float) -> str:
    return "∞" if v == np.inf else fmt(v)


def table1_markdown(rows: dict[str, dict[int, dict]], region: str) -> str:
    """The seed's Table 1 layout: rows are models, columns the classes; Dice pooled over the
    region, then per-slice mean ± sd, then HD95."""
    head = "| Model | " + " | ".join(name for _, name in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---|" * len(TABLE_COLUMNS)
    blocks = ((f"Dice on the validation region ({region}); labelled voxels only.",
               lambda m: fmt(m["dice"])),
              ("Per-slice Dice, mean ± sd:", lambda m: fmt(m["dice_slice_mean"], m["dice_slice_sd"])),
              ("HD95 (nm), pooled boundary distances:", lambda m: _hd(m["hd95_nm"])))
    lines: list[str] = []
    for title, cell in blocks:
        lines += [title, "", head, rule]
        lines += [f"| {model} | " + " | ".join(cell(per_class[c]) for c, _ in TABLE_COLUMNS) + " |"
                  for model, per_class in rows.items()]
        lines.append("")
    return "\n".join(lines)


def evaluation_region(n_slices: int, val_slices: list[int] | None) -> tuple[tuple[int, int], str]:
    """[start, stop) z-slices to evaluate: the validation slab of a sample whose own annotations
    trained the networks (never a training slice), else the whole volume (networks trained on
    another sample never saw this one)."""
    if val_slices:
        z0, z1 = int(min(val_slices)), int(max(val_slices)) + 1
        return (z0, z1), f"validation slab z = {z0}–{z1 - 1}"
    return (0, n_slices), f"whole volume, z = 0–{n_slices - 1} (networks trained on another sample)"


def error_slices(truth: np.ndarray | None, z_range: tuple[int, int], count: int = 3) -> list[int]:
    """Slices to show: the labelled ones in the region with the most Pt, else evenly spaced."""
    z0, z1 = z_range
    if truth is not None:
        sub = truth[z0:z1]
        labelled = np.flatnonzero((sub != IGNORE).any(axis=(1, 2)))
        if labelled.size:
            pt = (sub[labelled] == 2).sum(axis=(1, 2))
            best = labelled[np.argsort(-pt, kind="stable")[:count]]
            return sorted(int(z0 + z) for z in best)
    return sorted({int(z) for z in np.linspace(z0, z1 - 1, count + 2)[1:-1].round()})


def wide_row(model: str, per_class: dict[int, dict] | None, extra: dict) -> dict:
    """One metrics.csv row: the model, then <class>_<metric> columns, then the particle columns."""
    row: dict = {"model": model}
    for c, metrics in (per_class or {}).items():
        for k, v in metrics.items():
            row[f"{CLASS_NAMES[c]}_{k}"] = v
    row.update(extra)
    return row

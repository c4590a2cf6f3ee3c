"""Overlap of label maps, counted once for training (validation Dice) and evaluation (Table 1):
true/false positives and false negatives of a class over the labelled voxels.

NumPy only, so the learning and evaluation envs share it.
"""

from __future__ import annotations

import numpy as np

from .labels import CLASSES, IGNORE


def confusion(pred: np.ndarray, truth: np.ndarray, cls: int) -> tuple[int, int, int]:
    """(TP, FP, FN) of class `cls`, counting only voxels where the truth is labelled."""
    valid = truth != IGNORE
    p, t = (pred == cls) & valid, (truth == cls) & valid
    return int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())


def ratio(num: float, den: float) -> float:
    return float(num) / den if den else float("nan")


def overlap_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Dice = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN), precision = TP/(TP+FP), recall = TP/(TP+FN);
    NaN where the denominator is zero."""
    return {"dice": ratio(2 * tp, 2 * tp + fp + fn), "iou": ratio(tp, tp + fp + fn),
            "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn)}


def dice_per_class(pred: np.ndarray, truth: np.ndarray, classes: tuple[int, ...] = CLASSES,
                   absent: float = 1.0) -> list[float]:
    """Pooled Dice of each class over the labelled voxels; `absent` where a class is in neither."""
    out = []
    for c in classes:
        d = overlap_scores(*confusion(pred, truth, c))["dice"]
        out.append(absent if np.isnan(d) else d)
    return out

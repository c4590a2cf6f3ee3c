"""The label vocabulary, stated once: class ids, names, colours, the unlabelled value and the
networks. Every stage, the schema (checked by a test) and the rules read it from here.

NumPy only, so every rule's env imports it.
"""

from __future__ import annotations

import numpy as np

BACKGROUND, ALUMINA, PT = 0, 1, 2
CLASSES = (BACKGROUND, ALUMINA, PT)
IGNORE = 255  # unlabelled: left out of losses, validation and evaluation

# Machine names (file names, CSV columns such as val_dice_pt, JSON keys).
CLASS_NAMES = {BACKGROUND: "background", ALUMINA: "alumina", PT: "pt"}
# Table 1's columns, in the study's order, with its headings.
TABLE_COLUMNS = ((ALUMINA, "γ-Alumina"), (PT, "Pt NPs"), (BACKGROUND, "Background/pores"))
# RGB in [0, 1] for label maps (figures, the annotation helper).
COLOURS = {BACKGROUND: (0.05, 0.05, 0.1), ALUMINA: (0.55, 0.65, 0.8), PT: (1.0, 0.78, 0.2)}

# The three networks of the study (see stemtomo.learn.models for their architectures).
MODELS = ("unet", "attention_unet", "attention_res_unet")
# The segmentation by all trained networks together (the mean of their probabilities).
ENSEMBLE = "ensemble"


def colour_table() -> np.ndarray:
    """(256, 3) RGB lookup for uint8 label maps: the class colours, black for IGNORE and any
    other value."""
    table = np.zeros((256, 3))
    for c, rgb in COLOURS.items():
        table[c] = rgb
    return table


def class_counts(labels: np.ndarray) -> np.ndarray:
    """Voxels of each class (background, alumina, Pt), unlabelled voxels left out."""
    return np.bincount(labels[labels != IGNORE].ravel(), minlength=len(CLASSES))[:len(CLASSES)]


def class_statistics(labels: np.ndarray) -> dict:
    """Voxel counts and fractions per class over the labelled voxels, and the unlabelled share."""
    counts = class_counts(labels)
    total = max(int(counts.sum()), 1)
    return {"voxels": counts.tolist(), "fractions": (counts / total).round(6).tolist(),
            "ignored_fraction": float(np.mean(labels == IGNORE))}


def value_counts(labels: np.ndarray) -> dict[float, int]:
    """Voxels of each distinct value, in one pass for small integer labels (uint8/uint16 as
    annotation tools save them), by sorting otherwise."""
    flat = np.asarray(labels).reshape(-1)
    if flat.dtype.kind in "ub" and flat.dtype.itemsize <= 2:
        counts = np.zeros(256 ** flat.dtype.itemsize, np.int64)
        for start in range(0, flat.size, 1 << 22):  # chunks: bincount makes an int64 copy
            counts += np.bincount(flat[start:start + (1 << 22)], minlength=counts.size)
        return {v: int(counts[v]) for v in np.flatnonzero(counts).tolist()}
    values, counts = np.unique(flat, return_counts=True)
    return {(int(v) if float(v).is_integer() else float(v)): int(c)
            for v, c in zip(values.tolist(), counts.tolist(), strict=True)}

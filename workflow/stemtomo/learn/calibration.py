"""Validation figures on whole slices and the calibration of the Pt decision.

A network trained on Pt-enriched patches learns the patches' class prior (Pt ~2 % of the pixels
instead of ~0.3 % in whole slices), so its argmax over-segments Pt. The Pt decision is corrected by
a class prior on the softmax (p_Pt ← w·p_Pt, renormalised; Saerens et al., Neural Comput. 2002),
with w chosen on the labelled pixels of the whole validation slices so that as many pixels are
called Pt as the annotation holds: then false positives equal false negatives, i.e. precision
equals recall there. w = exp(b) where b is a shift of the Pt logit against the best other class.

NumPy only (the figures reuse core.overlap).
"""

from __future__ import annotations

import numpy as np

from ..core.labels import CLASS_NAMES, CLASSES, IGNORE, PT
from ..core.overlap import confusion, overlap_scores

MAX_LOG_PRIOR = 8.0  # |b| beyond this means the validation slices cannot tell (e.g. no Pt at all)


def pt_margins(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the labelled pixels of (n, classes, H, W) probabilities and (n, H, W) labels: the Pt
    log-odds against the most probable other class, and whether each pixel is Pt."""
    valid = labels != IGNORE
    p = np.moveaxis(probs, 1, -1)[valid].astype(np.float64)  # (pixels, classes)
    others = np.delete(p, PT, axis=1).max(axis=1)
    tiny = 1e-12
    return np.log(p[:, PT] + tiny) - np.log(others + tiny), labels[valid] == PT


def fit_pt_log_prior(margins: np.ndarray, is_pt: np.ndarray) -> float:
    """The Pt log prior b that calls exactly as many pixels Pt as are labelled Pt (b + margin > 0):
    midway between the k-th and (k+1)-th largest margins, k the number of Pt pixels."""
    k, n = int(is_pt.sum()), len(margins)
    if k == 0 or k == n:
        return 0.0
    top = -np.partition(-margins, (k - 1, k))[[k - 1, k]]
    return float(np.clip(-(top[0] + top[1]) / 2, -MAX_LOG_PRIOR, MAX_LOG_PRIOR))


def priors_from_log(log_prior: float) -> list[float]:
    """Class weights of the softmax (background, alumina, Pt) for a Pt log prior."""
    weights = [1.0] * len(CLASSES)
    weights[PT] = float(np.exp(log_prior))
    return weights


def decide(probs: np.ndarray, priors: list[float] | None = None) -> np.ndarray:
    """uint8 labels (n, H, W) from (n, classes, H, W) probabilities scaled by class priors (the
    normalisation does not move the argmax); the first maximum wins, as in segmentation."""
    scaled = probs if priors is None else probs * np.asarray(priors, probs.dtype)[None, :, None, None]
    return scaled.argmax(axis=1).astype(np.uint8)


def figures(pred: np.ndarray, truth: np.ndarray, prefix: str = "val_") -> dict[str, float]:
    """Dice, precision and recall of every class over the labelled pixels, as history columns
    (e.g. val_dice_pt); a class absent from truth and prediction scores Dice 1."""
    out = {}
    for c in CLASSES:
        scores = overlap_scores(*confusion(pred, truth, c))
        for m in ("dice", "precision", "recall"):
            v = scores[m]
            out[f"{prefix}{m}_{CLASS_NAMES[c]}"] = 1.0 if np.isnan(v) and m == "dice" else v
    return out


def validate(probs: np.ndarray, labels: np.ndarray, calibrate: bool) -> dict[str, float]:
    """The validation record of one epoch: figures at the argmax, and with `calibrate` the Pt
    log prior fitted on these slices and the figures with it (val_cal_*)."""
    row = figures(decide(probs), labels)
    if calibrate:
        log_prior = fit_pt_log_prior(*pt_margins(probs, labels))
        row["val_pt_log_prior"] = log_prior
        cal = figures(decide(probs, priors_from_log(log_prior)), labels, "val_cal_")
        row.update({k: v for k, v in cal.items() if k.endswith("_pt") or "alumina" in k})
    return row

"""What the networks say where nobody annotated: their agreement (pairwise Dice per class on the
unannotated slices — all that can be known there without truth) and which slices to annotate
next: those where they disagree most on Pt and γ-alumina (query by committee, Seung, Opper &
Sompolinsky 1992; the three networks are the committee)."""

from __future__ import annotations

import itertools

import numpy as np

from ..core.annotations import annotated_slices
from ..core.labels import ALUMINA, CLASS_NAMES, CLASSES, PT, TABLE_COLUMNS
from ..core.overlap import confusion, overlap_scores

SCORED = (PT, ALUMINA)


def slice_disagreement(segmentations: np.ndarray, annotations: np.ndarray,
                       separation: int = 3) -> list[dict]:
    """One row per unannotated slice: disputed Pt and alumina voxels and a score, ranked.

    score = Σ_c disputed_c / mean_c, with mean_c the mean number of voxels per slice that any
    network gives class c: each class counts in slices' worth of that class, so the rare Pt
    weighs as much as the abundant support. Ranks are greedy with `separation` slices between
    picks (neighbouring slices look alike: annotating both teaches little more than one)."""
    free = np.setdiff1d(np.arange(annotations.shape[0]), annotated_slices(annotations))
    nz = segmentations.shape[1]
    counts = {c: np.zeros(nz, np.int64) for c in SCORED}
    union = {c: np.zeros(nz, np.int64) for c in SCORED}
    for z in range(nz):  # slice by slice: no volume-sized temporaries
        for c in SCORED:
            hit = segmentations[:, z] == c
            counts[c][z] = int((hit.any(axis=0) & ~hit.all(axis=0)).sum())
            union[c][z] = int(hit.any(axis=0).sum())
    score = sum(counts[c] / max(float(union[c].mean()), 1.0) for c in SCORED)
    rows = [{"z": int(z), **{f"{CLASS_NAMES[c]}_disputed_voxels": int(counts[c][z]) for c in SCORED},
             "score": round(float(score[z]), 4), "rank": 0} for z in free]
    rank, taken = 1, []
    for row in sorted(rows, key=lambda r: -r["score"]):
        if row["score"] > 0 and all(abs(row["z"] - t) >= separation for t in taken):
            row["rank"] = rank
            rank += 1
            taken.append(row["z"])
    return sorted(rows, key=lambda r: (r["rank"] == 0, r["rank"], r["z"]))


def pairwise_agreement(segmentations: dict[str, np.ndarray], annotations: np.ndarray) -> dict:
    """Dice between every pair of networks, per class, on the unannotated slices."""
    free = np.setdiff1d(np.arange(annotations.shape[0]), annotated_slices(annotations))
    pairs = []
    for a, b in itertools.combinations(segmentations, 2):
        sa, sb = segmentations[a][free], segmentations[b][free]
        pairs.append({"models": [a, b], **{CLASS_NAMES[c]: overlap_scores(*confusion(sa, sb, c))["dice"]
                                          for c in CLASSES}})
    mean = {CLASS_NAMES[c]: float(np.nanmean([p[CLASS_NAMES[c]] for p in pairs])) if pairs
            else float("nan") for c in CLASSES}
    return {"models": list(segmentations), "unannotated_slices": int(len(free)), "pairs": pairs,
            "mean_pairwise_dice": mean}


def agreement_markdown(record: dict) -> str:
    """The agreement section of metrics.md."""
    from .report import fmt

    names = [CLASS_NAMES[c] for c, _ in TABLE_COLUMNS]
    lines = [f"Agreement between the networks on the {record['unannotated_slices']} unannotated "
             "slices (pairwise Dice; no truth there):", "",
             "| Models | " + " | ".join(name for _, name in TABLE_COLUMNS) + " |",
             "|---|" + "---|" * len(TABLE_COLUMNS)]
    for p in record["pairs"]:
        lines.append(f"| {' vs '.join(p['models'])} | " + " | ".join(fmt(p[n]) for n in names) + " |")
    return "\n".join(lines) + "\n"

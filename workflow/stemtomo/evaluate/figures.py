"""Figures of the evaluation: error maps (the study's Figure 2) and Pt particle sizes."""

from __future__ import annotations

import os

import numpy as np

from ..core.labels import ALUMINA, IGNORE, PT, TABLE_COLUMNS, colour_table
from ..core.plotting import pyplot, save


def error_maps(path: str | os.PathLike, volume: np.ndarray, truth: np.ndarray | None,
               pred: np.ndarray, slices: list[int], name: str) -> None:
    """The seed's Figure 2 per slice: image, truth, prediction, and per class the false negatives
    (red) and false positives (blue) over labelled pixels. Without truth: image and prediction."""
    plt = pyplot()
    colours = colour_table()
    cols = 2 if truth is None else 6
    fig, ax = plt.subplots(len(slices), cols, figsize=(2.7 * cols, 2.8 * len(slices)), squeeze=False)
    for r, z in enumerate(slices):
        img = volume[z]
        lo, hi = np.percentile(img, [1, 99.5])
        ax[r, 0].imshow(img, cmap="gray", vmin=lo, vmax=hi)
        ax[r, 0].set_ylabel(f"z = {z}")
        ax[r, cols - 1 if truth is None else 2].imshow(colours[pred[z]])
        titles = ("image", name) if truth is None else ("image", "ground truth", name)
        for c, title in enumerate(titles):
            ax[r, c].set_title(title, fontsize=9)
        if truth is None:
            continue
        ax[r, 1].imshow(colours[truth[z]])
        valid = truth[z] != IGNORE
        for k, (c, label) in enumerate(TABLE_COLUMNS):
            t, p = (truth[z] == c) & valid, (pred[z] == c) & valid
            rgb = np.full(img.shape + (3,), 0.92)
            rgb[t & p] = 0.6
            rgb[t & ~p] = (0.85, 0.1, 0.1)
            rgb[p & ~t] = (0.1, 0.3, 0.9)
            ax[r, 3 + k].imshow(rgb)
            ax[r, 3 + k].set_title(f"{label}: FN {int((t & ~p).sum())} / FP {int((p & ~t).sum())}",
                                   fontsize=8)
    for a in ax.flat:
        a.set_xticks([])
        a.set_yticks([])
    if truth is not None:
        fig.suptitle("red: false negative, blue: false positive, grey: correct", fontsize=9)
    fig.tight_layout()
    save(fig, path)


def particle_sizes(path: str | os.PathLike, diameters: dict[str, list[float]]) -> None:
    """Equivalent-diameter distributions of the Pt particles, one step histogram per source."""
    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    values = [d for ds in diameters.values() for d in ds]
    bins = np.linspace(0, max(values, default=1.0) * 1.05 + 1e-9, 25)
    for name, ds in diameters.items():
        style = {"color": "k", "lw": 2} if name == "truth" else {}
        ax[0].hist(ds, bins=bins, histtype="step", label=f"{name} ({len(ds)})", **style)
        ax[1].plot(np.sort(ds), np.arange(1, len(ds) + 1), label=name, **style)
    ax[0].set_xlabel("equivalent diameter (nm)")
    ax[0].set_ylabel("particles")
    ax[0].legend(fontsize=8)
    ax[1].set_xlabel("equivalent diameter (nm)")
    ax[1].set_ylabel("cumulative count")
    fig.tight_layout()
    save(fig, path)


def suggestions(path: str | os.PathLike, volume: np.ndarray, segmentations: np.ndarray,
                rows: list[dict], annotated: np.ndarray, count: int = 3) -> None:
    """The disagreement score per slice (annotated slices marked) and the best-ranked slices with
    the voxels the networks dispute (Pt gold, alumina blue)."""
    plt = pyplot()
    best = [r for r in rows if r["rank"]][:count]
    fig, ax = plt.subplots(1, 1 + len(best), figsize=(4.2 * (1 + len(best)), 3.8), squeeze=False)
    ax = ax[0]
    z = [r["z"] for r in sorted(rows, key=lambda r: r["z"])]
    ax[0].plot(z, [r["score"] for r in sorted(rows, key=lambda r: r["z"])], ".-", color="0.3")
    for a in annotated:
        ax[0].axvline(a, color="tab:green", lw=0.8)
    ax[0].set_xlabel("slice z (green: annotated)")
    ax[0].set_title("network disagreement (Pt + alumina)", fontsize=9)
    for k, r in enumerate(best, 1):
        img = volume[r["z"]]
        lo, hi = np.percentile(img, [1, 99.5])
        rgb = np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)[..., None].repeat(3, axis=-1)
        for c, colour in ((ALUMINA, (0.2, 0.5, 1.0)), (PT, (1.0, 0.78, 0.2))):
            hit = segmentations[:, r["z"]] == c
            rgb[hit.any(axis=0) & ~hit.all(axis=0)] = colour
        ax[k].imshow(rgb)
        ax[k].set_title(f"#{r['rank']}: z = {r['z']} (score {r['score']:.2f})", fontsize=9)
        ax[k].set_xticks([])
        ax[k].set_yticks([])
    fig.tight_layout()
    save(fig, path)

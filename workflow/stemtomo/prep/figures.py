"""QC figure of the import: imported tilts, background levels and intensity factors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.plotting import pyplot, save


def import_qc(path: str | os.PathLike, stack: np.ndarray, angles: np.ndarray, meta: dict) -> None:
    """Per-tilt background and normalisation factors, and three imported tilts."""
    plt = pyplot()
    fig, ax = plt.subplots(1, 4, figsize=(15, 3.8))
    for k, i in enumerate((0, int(np.argmin(np.abs(angles))), len(angles) - 1)):
        ax[k].imshow(stack[i], cmap="gray")
        ax[k].set_title(f"{angles[i]:+.1f}°")
        ax[k].set_xticks([])
        ax[k].set_yticks([])
    if "normalize_factors" in meta:
        ax[3].plot(angles, meta["normalize_factors"], ".-", label="intensity factor")
    if "background_levels" in meta:
        levels = np.asarray(meta["background_levels"])
        ax[3].plot(angles, levels / max(np.median(np.abs(levels)), 1e-12), ".-",
                   label="vacuum level / median")
    ax[3].axhline(1.0, color="0.6", lw=0.8)
    ax[3].set_xlabel("tilt (°)")
    ax[3].legend(fontsize=8)
    ax[3].set_title(f"{len(angles)} tilts, {meta['pixel_size_nm']:.3g} nm/px")
    fig.tight_layout()
    save(fig, path)


def dataset_overview(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray,
                     record: dict, count: int = 4) -> None:
    """A few training and validation images of a 2D dataset above their masks."""
    from ..core.labels import colour_table

    plt = pyplot()
    picks = [("train", e) for e in record["train"][:count]] + [("val", e) for e in record["val"][:count]]
    fig, ax = plt.subplots(2, len(picks), figsize=(2.4 * len(picks), 5), squeeze=False)
    for k, (part, entry) in enumerate(picks):
        i = entry["index"]
        lo, hi = np.percentile(images[i], [1, 99.5])
        ax[0, k].imshow(images[i], cmap="gray", vmin=lo, vmax=hi)
        ax[0, k].set_title(f"{part}: {Path(entry['image']).name}", fontsize=7)
        ax[1, k].imshow(colour_table()[labels[i]])
        ax[1, k].set_title(Path(entry["mask"]).name, fontsize=7)
    for a in ax.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    save(fig, path)

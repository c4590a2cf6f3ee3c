"""QC figure of the import: imported tilts, background levels and intensity factors."""

from __future__ import annotations

import os

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

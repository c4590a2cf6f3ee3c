"""The denoise stage's figure: the same slices raw and denoised, a line profile across Pt
particles, and the training loss."""

from __future__ import annotations

import os

import numpy as np

from ..core.intensity import intensity_range
from ..core.plotting import pyplot, save


def bright_line(volume: np.ndarray) -> tuple[int, int]:
    """(z, y) of the x-line that crosses the most bright voxels (Pt scatters ~20× more than the
    support, so its particles are the brightest 0.1 %): the slice and row the figure shows."""
    threshold = np.percentile(volume, 99.9)
    counts = (volume > threshold).sum(axis=2)  # (z, y): bright voxels on each x-line
    z, y = np.unravel_index(int(np.argmax(counts)), counts.shape)
    return int(z), int(y)


def comparison(path: str | os.PathLike, raw: np.ndarray, denoised: np.ndarray,
               voxel_nm: float | None, loss: list[float]) -> None:
    """x-y slice and x-z plane (the one perpendicular to the tilt axis) raw | denoised on one grey
    scale, with the profile along the marked line and the loss per epoch."""
    plt = pyplot()
    z, y = bright_line(raw)
    lo, hi = intensity_range(raw, 1.0, 99.0)  # the support's range: Pt (0.3 %) saturates
    fig, ax = plt.subplots(2, 3, figsize=(14, 9))
    for c, (name, vol) in enumerate((("raw", raw), ("denoised", denoised))):
        ax[0, c].imshow(vol[z], cmap="gray", vmin=lo, vmax=hi)
        ax[0, c].axhline(y, color="tab:orange", lw=0.8)
        ax[0, c].set_title(f"{name}: x-y slice z={z}")
        ax[1, c].imshow(vol[:, y, :], cmap="gray", vmin=lo, vmax=hi)
        ax[1, c].axhline(z, color="tab:orange", lw=0.8)
        ax[1, c].set_title(f"{name}: x-z plane y={y} (⊥ tilt axis)")
        for a in ax[:, c]:
            a.set_xticks([])
            a.set_yticks([])
    x = np.arange(raw.shape[2]) * (voxel_nm or 1.0)
    ax[0, 2].plot(x, raw[z, y], color="0.5", lw=1, label="raw")
    ax[0, 2].plot(x, denoised[z, y], color="tab:blue", lw=1.5, label="denoised")
    ax[0, 2].set_xlabel("x (nm)" if voxel_nm else "x (px)")
    ax[0, 2].set_title("profile along the line (peaks: Pt particles)")
    ax[0, 2].legend()
    ax[1, 2].semilogy(np.arange(1, len(loss) + 1), loss, ".-")
    ax[1, 2].set_xlabel("epoch")
    ax[1, 2].set_title("training loss (floor: the noise of the target split)")
    fig.tight_layout()
    save(fig, path)

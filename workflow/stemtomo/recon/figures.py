"""QC figure of the reconstruction: orthoslices and the residual curve."""

from __future__ import annotations

import os

import numpy as np

from ..core.plotting import pyplot, save


def orthoslices(path: str | os.PathLike, volume: np.ndarray, residuals: list[float],
                record: dict) -> None:
    """Central x-y, x-z and y-z slices of a (z, y, x) volume and the residual per iteration."""
    plt = pyplot()
    nz, ny, nx = volume.shape
    fig, ax = plt.subplots(1, 4, figsize=(16, 4.2), gridspec_kw={"width_ratios": [1, 1, 1, 0.9]})
    lo, hi = np.percentile(volume, [1, 99.5])  # Pt saturates; the support stays visible
    for a, img, title in ((ax[0], volume[nz // 2], f"x-y, z = {nz // 2}"),
                          (ax[1], volume[:, ny // 2], f"x-z, y = {ny // 2}"),
                          (ax[2], volume[:, :, nx // 2], f"y-z, x = {nx // 2}")):
        a.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        a.set_title(title)
        a.set_xticks([])
        a.set_yticks([])
    ax[3].semilogy(np.arange(1, len(residuals) + 1), residuals, ".-")
    ax[3].set_xlabel("iteration")
    ax[3].set_title(f"{record['algorithm']} on {record['backend']}: ‖Ax−y‖/‖y‖", fontsize=9)
    fig.tight_layout()
    save(fig, path)

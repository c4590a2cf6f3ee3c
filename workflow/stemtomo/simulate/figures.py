"""QC figure of the simulation: phantom, projections, particle sizes, true misalignment."""

from __future__ import annotations

import os

import numpy as np

from ..core.labels import colour_table
from ..core.plotting import pyplot, save


def simulation_overview(path: str | os.PathLike, stack: np.ndarray, angles: np.ndarray,
                        labels: np.ndarray, density: np.ndarray, truth: dict) -> None:
    """Labels and density orthoslices, three projections, Pt sizes and the true shifts."""
    plt = pyplot()
    fig, ax = plt.subplots(2, 4, figsize=(15, 7.5))
    zc, yc = labels.shape[0] // 2, labels.shape[1] // 2
    ax[0, 0].imshow(colour_table()[labels[zc]])
    ax[0, 0].set_title(f"labels, z = {zc} (x-y)")
    ax[0, 1].imshow(colour_table()[labels[:, yc]])
    ax[0, 1].set_title(f"labels, y = {yc} (x-z)")
    ax[0, 2].imshow(density.sum(axis=0), cmap="gray")
    ax[0, 2].set_title("projected density along z")
    d = [p["diameter_nm"] for p in truth["pt_particles"]]
    ax[0, 3].hist(d, bins=15, color="goldenrod")
    ax[0, 3].set_xlabel("Pt diameter (nm)")
    ax[0, 3].set_title(f"{len(d)} Pt particles, {100 * truth['class_fractions']['pt']:.2f} % of voxels")
    for k, i in enumerate((0, int(np.argmin(np.abs(angles))), len(angles) - 1)):
        ax[1, k].imshow(stack[i], cmap="gray")
        ax[1, k].set_title(f"raw tilt {angles[i]:+.0f}°")
    s = np.asarray(truth["shifts_yx_px"])
    ax[1, 3].plot(angles, s[:, 0], label="shift y")
    ax[1, 3].plot(angles, s[:, 1], label="shift x")
    ax[1, 3].set_xlabel("tilt (°)")
    ax[1, 3].set_ylabel("px")
    ax[1, 3].set_title(f"true misalignment; axis {truth['axis_angle_deg']:+.2f}°, "
                       f"offset {truth['axis_offset_px']:+.2f} px", fontsize=9)
    ax[1, 3].legend()
    for a in ax.flat[:7]:
        if a is not ax[0, 3]:
            a.set_xticks([])
            a.set_yticks([])
    fig.tight_layout()
    save(fig, path)

"""QC figures for the report (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

import os

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> None:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    _pyplot().close(fig)


LABEL_COLOURS = np.array([[0.05, 0.05, 0.1], [0.55, 0.65, 0.8], [1.0, 0.78, 0.2]])


def simulation_overview(path: str | os.PathLike, stack: np.ndarray, angles: np.ndarray,
                        labels: np.ndarray, density: np.ndarray, truth: dict) -> None:
    """Labels and density orthoslices, three projections, Pt sizes and the true shifts."""
    plt = _pyplot()
    fig, ax = plt.subplots(2, 4, figsize=(15, 7.5))
    zc, yc = labels.shape[0] // 2, labels.shape[1] // 2
    ax[0, 0].imshow(LABEL_COLOURS[labels[zc]])
    ax[0, 0].set_title(f"labels, z = {zc} (x-y)")
    ax[0, 1].imshow(LABEL_COLOURS[labels[:, yc]])
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
    _save(fig, path)


def import_qc(path: str | os.PathLike, stack: np.ndarray, angles: np.ndarray, meta: dict) -> None:
    """Per-tilt background and normalisation factors, and three imported tilts."""
    plt = _pyplot()
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
    _save(fig, path)

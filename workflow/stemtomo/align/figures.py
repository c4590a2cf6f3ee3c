"""QC figure of the alignment."""

from __future__ import annotations

import os

import numpy as np

from ..core.geometry import centre
from ..core.plotting import pyplot, save


def alignment_qc(path: str | os.PathLike, raw: np.ndarray, aligned: np.ndarray,
                 angles: np.ndarray, alignment, kept: np.ndarray) -> None:
    """Shift curves, correlation quality per tilt, axis-angle search or projection-matching
    convergence, and the sum of projections before and after alignment."""
    plt = pyplot()
    fig, ax = plt.subplots(2, 3, figsize=(15, 8.5))
    s, bad = alignment.shifts_yx, alignment.bad
    ax[0, 0].plot(angles, s[:, 0], ".-", label="shift y")
    ax[0, 0].plot(angles, s[:, 1], ".-", label="shift x")
    ax[0, 0].set_xlabel("tilt (°)")
    ax[0, 0].set_ylabel("px (raw frame)")
    ax[0, 0].set_title(f"axis {alignment.axis_angle_deg:+.3f}°, offset {alignment.axis_offset_px:+.2f} px")
    ax[0, 0].legend(fontsize=8)
    ax[0, 1].plot(angles, alignment.quality, ".-", color="0.3")
    ax[0, 1].plot(angles[bad], np.nan_to_num(alignment.quality[bad]), "rx", ms=9,
                  label="flagged")  # NaN (no signal) drawn at 0
    ax[0, 1].set_xlabel("tilt (°)")
    ax[0, 1].set_title("correlation with reference" + (" (reprojection)" if alignment.history.get(
        "projection_matching") else " (neighbour)"))
    if bad.any():
        ax[0, 1].legend(fontsize=8)
    pm = alignment.history.get("projection_matching") or []
    search = alignment.history.get("axis_angle_search", {})
    if pm:
        it = [h["iteration"] for h in pm]
        ax[0, 2].semilogy(it, [max(h["rms_change_px"], 1e-4) for h in pm], "o-", label="rms shift change")
        ax2 = ax[0, 2].twinx()
        ax2.plot(it, [h["offset_px"] for h in pm], "s--", color="tab:orange", label="axis offset")
        ax2.set_ylabel("offset (px)")
        ax[0, 2].set_xlabel("projection-matching iteration")
        ax[0, 2].set_title("projection matching")
        ax[0, 2].legend(fontsize=8, loc="upper right")
    elif "grid_deg" in search:
        ax[0, 2].plot(search["grid_deg"], search["grid_cost"], ".-")
        ax[0, 2].axvline(alignment.axis_angle_deg, color="r")
        ax[0, 2].set_xlabel("tilt-axis angle (°)")
        ax[0, 2].set_title("common-line profile spread")
    ax[1, 0].imshow(raw.sum(axis=0), cmap="gray")
    ax[1, 0].set_title("sum of raw projections")
    ax[1, 1].imshow(aligned.sum(axis=0), cmap="gray")
    ax[1, 1].set_title(f"sum of aligned projections ({int(kept.sum())} tilts)")
    ax[1, 2].imshow(aligned[int(np.argmin(np.abs(angles[kept])))], cmap="gray")
    ax[1, 2].axvline(centre(aligned.shape[2]), color="y", lw=0.8)
    ax[1, 2].set_title("aligned, lowest tilt; tilt axis in yellow")
    for a in ax[1]:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    save(fig, path)

"""QC figure of the alignment."""

from __future__ import annotations

import os

import numpy as np

from ..core.geometry import centre
from ..core.plotting import pyplot, save


def alignment_qc(path: str | os.PathLike, raw: np.ndarray, aligned: np.ndarray,
                 angles: np.ndarray, alignment, kept: np.ndarray) -> None:
    """Shift curves, correlation quality per tilt, projection-matching convergence or the offset
    search, the axis candidates with their residuals and the confidence of the choice, the sum
    of projections before and after alignment, and the self-consistency of both."""
    plt = pyplot()
    fig, ax = plt.subplots(2, 4, figsize=(20, 8.5))
    s, bad = alignment.shifts_yx, alignment.bad
    ax[0, 0].plot(angles, s[:, 0], ".-", label="shift y")
    ax[0, 0].plot(angles, s[:, 1], ".-", label="shift x")
    ax[0, 0].set_xlabel("tilt (°)")
    ax[0, 0].set_ylabel("px (raw frame)")
    source = alignment.history.get("axis_angle_search", {}).get("fine_angle_from", "given")
    ax[0, 0].set_title(f"axis {alignment.axis_angle_deg:+.3f}° ({source}), "
                       f"offset {alignment.axis_offset_px:+.2f} px", fontsize=10)
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
    elif "fine_px" in alignment.history.get("offset_search", {}):
        off = alignment.history["offset_search"]
        ax[0, 2].plot(off.get("grid_px", off["fine_px"]), off.get("grid_misfit", off["fine_misfit"]), ".-")
        ax[0, 2].plot(off["fine_px"], off["fine_misfit"], ".-")
        ax[0, 2].set_xlabel("offset from the start (px, working binning)")
        ax[0, 2].set_title("axis-offset search (CGLS misfit)")
    _candidates(ax[0, 3], search, alignment.axis_angle_deg)
    ax[1, 0].imshow(raw.sum(axis=0), cmap="gray")
    ax[1, 0].set_title("sum of raw projections")
    ax[1, 1].imshow(aligned.sum(axis=0), cmap="gray")
    ax[1, 1].set_title(f"sum of aligned projections ({int(kept.sum())} tilts)")
    ax[1, 2].imshow(aligned[int(np.argmin(np.abs(angles[kept])))], cmap="gray")
    ax[1, 2].axvline(centre(aligned.shape[2]), color="y", lw=0.8)
    ax[1, 2].set_title("aligned, lowest tilt; tilt axis in yellow")
    for a in ax[1, :3]:
        a.set_xticks([])
        a.set_yticks([])
    _consistency(ax[1, 3], alignment.history.get("self_consistency"))
    fig.tight_layout()
    save(fig, path)


def _candidates(ax, search: dict, angle: float) -> None:
    """The common-line cost over the searched lines, each candidate marked with its residual."""
    if "grid_deg" not in search:
        ax.set_title("tilt-axis angle given (no search)")
        ax.axis("off")
        return
    ax.semilogy(search["grid_deg"], search["grid_cost"], ".-", color="0.5")
    for k, c in enumerate(search.get("candidates", [])):
        chosen = k == search.get("chosen")
        ax.plot(c["refined_deg"], c["line_cost"], "o", ms=9 if chosen else 6,
                color="tab:green" if chosen else "tab:red", mfc="none" if not chosen else None)
        label = c["source"] if c["residual"] is None else f"{c['residual']:.3f}"
        ax.annotate(label, (c["refined_deg"], c["line_cost"]), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=8)
    ax.axvline(angle, color="tab:green", lw=0.8)
    ax.set_xlabel("tilt-axis angle (°)")
    ax.set_ylabel("common-line profile spread")
    low = search.get("confidence") == "low"
    ax.set_title(f"axis candidates (residual each); {search.get('confidence', '?')} confidence"
                 + (" — CHECK" if low else ""), color="tab:red" if low else "black", fontsize=10)


def _consistency(ax, record: dict | None) -> None:
    """Reprojection residual of the raw and of the aligned series (same slabs, same SIRT)."""
    if not record:
        ax.axis("off")
        return
    ax.bar(["raw", "aligned"], [record["raw"], record["aligned"]], color=["0.6", "tab:green"])
    for k, v in enumerate((record["raw"], record["aligned"])):
        ax.text(k, v, f"{v:.4f}", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("||Ax - y|| / ||y||")
    ax.set_title(f"self-consistency: {record['iterations']} SIRT iterations, "
                 f"{len(record['slabs'])} slabs", fontsize=10)

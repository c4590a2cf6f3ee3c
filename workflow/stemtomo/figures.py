"""QC figures for the report (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

import os

import numpy as np

from .geometry import centre


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


def alignment_qc(path: str | os.PathLike, raw: np.ndarray, aligned: np.ndarray,
                 angles: np.ndarray, alignment, kept: np.ndarray) -> None:
    """Shift curves, correlation quality per tilt, axis-angle search or projection-matching
    convergence, and the sum of projections before and after alignment."""
    plt = _pyplot()
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
    _save(fig, path)


def orthoslices(path: str | os.PathLike, volume: np.ndarray, residuals: list[float],
                record: dict) -> None:
    """Central x-y, x-z and y-z slices of a (z, y, x) volume and the residual per iteration."""
    plt = _pyplot()
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
    _save(fig, path)


def patch_examples(path: str | os.PathLike, train, val, count: int = 6) -> None:
    """A row of training and a row of validation patches, each with its label map."""
    plt = _pyplot()
    colours = np.vstack([LABEL_COLOURS, np.zeros((253, 3))])  # 255 (unlabelled) → black
    fig, ax = plt.subplots(4, count, figsize=(2.2 * count, 9))
    for r, (name, ps) in enumerate((("train", train), ("val", val))):
        for c in range(min(count, len(ps.labels))):
            ax[2 * r, c].imshow(ps.images[c, ps.images.shape[1] // 2], cmap="gray", vmin=0, vmax=0.5)
            ax[2 * r, c].set_title(f"{name} z={ps.slices[c]}" + (" (Pt)" if ps.pt_centred[c] else ""),
                                   fontsize=8)
            ax[2 * r + 1, c].imshow(colours[ps.labels[c]])
    for a in ax.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    _save(fig, path)


def learning_curves(path: str | os.PathLike, history: list[dict], best_epoch: int, name: str) -> None:
    """Training loss and validation Dice per class against the epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(epochs, [h["loss"] for h in history], ".-")
    ax[0].set_xlabel("epoch")
    ax[0].set_title(f"{name}: training loss")
    for key, colour in (("background", "0.3"), ("alumina", "tab:blue"), ("pt", "goldenrod")):
        ax[1].plot(epochs, [h[f"val_dice_{key}"] for h in history], ".-", color=colour, label=key)
    for a in ax:
        a.axvline(best_epoch, color="k", ls="--", lw=0.8)
    ax[1].set_xlabel("epoch")
    ax[1].set_ylim(0, 1)
    ax[1].set_title("validation Dice")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def error_maps(path: str | os.PathLike, volume: np.ndarray, truth: np.ndarray | None,
               pred: np.ndarray, slices: list[int], name: str) -> None:
    """The seed's Figure 2 per slice: image, truth, prediction, and per class the false negatives
    (red) and false positives (blue) over labelled pixels. Without truth: image and prediction."""
    plt = _pyplot()
    colours = np.vstack([LABEL_COLOURS, np.zeros((253, 3))])
    classes = ((1, "γ-alumina"), (2, "Pt"), (0, "background"))
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
        valid = truth[z] != 255
        for k, (c, label) in enumerate(classes):
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
    _save(fig, path)


def particle_sizes(path: str | os.PathLike, diameters: dict[str, list[float]]) -> None:
    """Equivalent-diameter distributions of the Pt particles, one step histogram per source."""
    plt = _pyplot()
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
    _save(fig, path)

"""QC figures of the learning stages: example patches and learning curves."""

from __future__ import annotations

import os

import numpy as np

from ..core.labels import CLASS_NAMES, COLOURS, colour_table
from ..core.plotting import pyplot, save


def patch_examples(path: str | os.PathLike, train, val, count: int = 6, sources: int = 1) -> None:
    """A row of training patches and a row of the whole validation slices, each with its label
    map; grey levels from 0 to the 99.5 % point of the inputs (either normalisation). Of several
    input volumes the last (the denoised one) is shown, its centre slice."""
    plt = pyplot()
    colours = colour_table()  # unlabelled → black
    fig, ax = plt.subplots(4, count, figsize=(2.2 * count, 9))
    per = train.images.shape[1] // sources
    shown = (sources - 1) * per + per // 2
    vmax = float(np.percentile(train.images[:, shown], 99.5)) or 1.0
    for r, (name, ps) in enumerate((("train", train), ("val", val))):
        for c in range(min(count, len(ps.labels))):
            ax[2 * r, c].imshow(ps.images[c, shown], cmap="gray", vmin=0, vmax=vmax)
            ax[2 * r, c].set_title(f"{name} z={ps.slices[c]}" + (" (Pt)" if ps.pt_centred[c] else ""),
                                   fontsize=8)
            ax[2 * r + 1, c].imshow(colours[ps.labels[c]])
    for a in ax.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    save(fig, path)


def learning_curves(path: str | os.PathLike, history: list[dict], best_epoch: int, name: str) -> None:
    """Training loss, validation Dice per class (whole slices) and Pt precision / recall (before
    and after the calibration) against the epoch."""
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 3, figsize=(16, 4))
    ax[0].plot(epochs, [h["loss"] for h in history], ".-")
    ax[0].set_xlabel("epoch")
    ax[0].set_title(f"{name}: training loss")
    for c, key in CLASS_NAMES.items():
        ax[1].plot(epochs, [h[f"val_dice_{key}"] for h in history], ".-", color=COLOURS[c], label=key)
    for a in ax:
        a.axvline(best_epoch, color="k", ls="--", lw=0.8)
    ax[1].set_xlabel("epoch")
    ax[1].set_ylim(0, 1)
    ax[1].set_title("validation Dice (whole slices)")
    ax[1].legend(fontsize=8)
    for key, style in (("val_precision_pt", "-"), ("val_recall_pt", "--"),
                       ("val_cal_precision_pt", ":"), ("val_cal_recall_pt", "-.")):
        if key in history[0]:
            ax[2].plot(epochs, [h[key] for h in history], style, label=key[4:])
    ax[2].axvline(best_epoch, color="k", ls="--", lw=0.8)
    ax[2].set_xlabel("epoch")
    ax[2].set_ylim(0, 1)
    ax[2].set_title("Pt precision / recall")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)

"""The evaluation's tables: Table 1 (markdown), metrics.csv rows, the evaluation region, and the
slices the error maps show."""

from __future__ import annotations

import numpy as np

from ..core.labels import CLASS_NAMES, CLASSES, IGNORE, PT, TABLE_COLUMNS, class_counts


def volume_fractions(labels: np.ndarray) -> dict[str, float]:
    counts = class_counts(labels)
    total = counts.sum() or 1
    return {f"fraction_{CLASS_NAMES[c]}": float(counts[c] / total) for c in CLASSES}


def fmt(mean: float, sd: float | None = None, digits: int = 3) -> str:
    """A table cell: '—' for undefined values (NaN), mean or mean ± sd otherwise."""
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" if sd is None or not np.isfinite(sd) else \
        f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _hd(v: float) -> str:
    return "∞" if v == np.inf else fmt(v)


def table1_markdown(rows: dict[str, dict[int, dict]], region: str,
                    validation: dict[str, dict] | None = None) -> str:
    """The seed's Table 1 layout: rows are models, columns the classes; Dice pooled over the
    region, precision / recall on the same voxels (as the study reports them), per-slice Dice
    mean ± sd, HD95; then each network's best epoch on the whole validation slices."""
    head = "| Model | " + " | ".join(name for _, name in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---|" * len(TABLE_COLUMNS)
    blocks = ((f"Dice on the validation region ({region}); labelled voxels only.",
               lambda m: fmt(m["dice"])),
              ("Precision / recall, pooled over the same voxels:",
               lambda m: f"{fmt(m['precision'])} / {fmt(m['recall'])}"),
              ("Per-slice Dice, mean ± sd:", lambda m: fmt(m["dice_slice_mean"], m["dice_slice_sd"])),
              ("HD95 (nm), pooled boundary distances:", lambda m: _hd(m["hd95_nm"])))
    lines: list[str] = []
    for title, cell in blocks:
        lines += [title, "", head, rule]
        lines += [f"| {model} | " + " | ".join(cell(per_class[c]) for c, _ in TABLE_COLUMNS) + " |"
                  for model, per_class in rows.items()]
        lines.append("")
    if validation:
        lines += validation_markdown(validation)
    return "\n".join(lines)


def validation_markdown(validation: dict[str, dict]) -> list[str]:
    """Each network's best epoch as training saw it: the whole annotated validation slices
    (labelled pixels; Pt with its calibration where there is one). `validation` maps a model
    to its best history row; an ensemble's row (no epoch) holds its figures on the same slices
    with its own calibration, an empty row none."""
    lines = ["Training's best epoch on the whole validation slices (annotated pixels; Pt with "
             "its calibration):", "",
             "| Model | epoch | γ-Alumina Dice | Pt Dice | Pt precision / recall | Pt prior |",
             "|---|---|---|---|---|---|"]
    for model, row in validation.items():
        if not row:
            lines.append(f"| {model} | — | — | — | — | — |")
            continue
        cal = "val_cal_" if "val_cal_dice_pt" in row else "val_"
        prior = f"{np.exp(row['val_pt_log_prior']):.3g}" if "val_pt_log_prior" in row else "—"
        epoch = int(row["epoch"]) if "epoch" in row else "—"
        lines.append(f"| {model} | {epoch} | {fmt(row['val_dice_alumina'])} | "
                     f"{fmt(row[cal + 'dice_pt'])} | {fmt(row.get(cal + 'precision_pt', np.nan))}"
                     f" / {fmt(row.get(cal + 'recall_pt', np.nan))} | {prior} |")
    lines.append("")
    return lines


def evaluation_region(n_slices: int, val_slices: list[int] | None,
                      images: bool = False) -> tuple[tuple[int, int], str]:
    """[start, stop) z-slices to evaluate: the validation slab of a sample whose own annotations
    trained the networks (never a training slice), else the whole volume (networks trained on
    another sample never saw this one). `images`: the slices are a 2D dataset's images."""
    if val_slices:
        z0, z1 = int(min(val_slices)), int(max(val_slices)) + 1
        if images:
            return (z0, z1), f"the {z1 - z0} validation images"
        return (z0, z1), f"validation slab z = {z0}–{z1 - 1}"
    return (0, n_slices), f"whole volume, z = 0–{n_slices - 1} (networks trained on another sample)"


def error_slices(truth: np.ndarray | None, z_range: tuple[int, int], count: int = 3) -> list[int]:
    """Slices to show: the labelled ones in the region with the most Pt, else evenly spaced."""
    z0, z1 = z_range
    if truth is not None:
        sub = truth[z0:z1]
        labelled = np.flatnonzero((sub != IGNORE).any(axis=(1, 2)))
        if labelled.size:
            pt = (sub[labelled] == PT).sum(axis=(1, 2))
            best = labelled[np.argsort(-pt, kind="stable")[:count]]
            return sorted(int(z0 + z) for z in best)
    return sorted({int(z) for z in np.linspace(z0, z1 - 1, count + 2)[1:-1].round()})


def wide_row(model: str, per_class: dict[int, dict] | None, extra: dict) -> dict:
    """One metrics.csv row: the model, then <class>_<metric> columns, then the particle columns."""
    row: dict = {"model": model}
    for c, metrics in (per_class or {}).items():
        for k, v in metrics.items():
            row[f"{CLASS_NAMES[c]}_{k}"] = v
    row.update(extra)
    return row

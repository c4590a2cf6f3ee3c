"""The evaluate stage: one network's segmentation against the truth (evaluate_model rule) and the
summary over all networks (evaluate rule: metrics.csv, metrics.md).

Conventions are stated in evaluate.metrics (overlap, HD95) and evaluate.particles.
"""

from __future__ import annotations

import logging

import numpy as np

from ..core.errors import InputError
from ..core.labels import ALUMINA, BACKGROUND, CLASS_NAMES, IGNORE, PT
from . import report
from .agreement import agreement_markdown
from .metrics import class_metrics
from .particles import Particles, match_particles, particles

log = logging.getLogger("stemtomo.evaluate")
PARTICLE_KEYS = ("particles", "particles_pred", "particles_true", "particles_matched",
                 "detection_precision", "detection_recall", "detection_f1",
                 "fraction_background", "fraction_alumina", "fraction_pt")
# metrics.csv columns of the best epoch on the whole validation slices (best_epoch_<key>)
VALIDATION_KEYS = ("epoch", "val_dice_alumina", "val_dice_pt", "val_precision_pt", "val_recall_pt",
                   "val_pt_log_prior", "val_cal_dice_pt", "val_cal_precision_pt",
                   "val_cal_recall_pt")


def evaluate_model(model: str, pred: np.ndarray, truth: np.ndarray | None, voxel_nm: float,
                   val_slices: list[int] | None, truth_source: str = "truth",
                   validation: dict | None = None, planar: bool = False
                   ) -> tuple[dict, Particles, tuple[int, int]]:
    """The record of one network's segmentation (class metrics on the evaluation region where
    there is a truth, fractions, particle counts and detection), its particles, and the region.
    `validation` (segment.json's) holds the best epoch of each network it came from; `planar`:
    the slices are unrelated 2D images (particles are 2D components)."""
    if truth is not None and truth.shape != pred.shape:
        raise InputError(truth_source, f"labels have shape {truth.shape}, the segmentation "
                         f"{pred.shape}", "annotate the reconstruction itself (same (z, y, x))")
    region, described = report.evaluation_region(pred.shape[0], val_slices, images=planar)
    found = particles(pred, voxel_nm, planar)
    record = {"model": model, "region": described, "z_range": list(region), "voxel_nm": voxel_nm,
              **report.volume_fractions(pred), "particles": len(found.table)}
    if validation:
        record["validation"] = validation
    if truth is not None:
        z0, z1 = region
        per_class = class_metrics(pred[z0:z1], truth[z0:z1], voxel_nm)
        record["classes"] = {CLASS_NAMES[c]: m for c, m in per_class.items()}
        if not (truth[z0:z1] == IGNORE).any():  # particles need the complete 3D truth
            record.update(match_particles(found, particles(truth, voxel_nm, planar), region,
                                          voxel_nm))
        else:
            record["detection_note"] = "truth is partial in the region: no particle matching"
        log.info("Dice (alumina, Pt, background) on %s: %.3f, %.3f, %.3f", described,
                 per_class[ALUMINA]["dice"], per_class[PT]["dice"], per_class[BACKGROUND]["dice"])
    return record, found, region


def summary(sample: str, records: list[dict], diameters: dict[str, list[float]],
            truth_rows: list[dict], agreement: dict | None = None) -> tuple[list[dict], str]:
    """metrics.csv rows and metrics.md text over all networks' records; `diameters` holds each
    network's particle diameters (and the truth's, first, where complete); `agreement` the
    networks' agreement on the unannotated slices (evaluate.agreement)."""
    rows, table, validation = [], {}, {}
    for rec in records:
        members = rec.get("validation") or {}
        if members:  # one network's (or the ensemble's) own row; older ensembles: its networks
            validation[rec["model"]] = next(iter(members.values())) if len(members) == 1 else {}
        per_class = {c: rec["classes"][name] for c, name in CLASS_NAMES.items()} \
            if "classes" in rec else None
        best = validation.get(rec["model"]) or {}
        extra = {f"best_epoch_{k}": best[k] for k in VALIDATION_KEYS if k in best}
        rows.append(report.wide_row(rec["model"], per_class,
                                    {**{k: rec[k] for k in PARTICLE_KEYS if k in rec}, **extra}))
        if per_class:
            table[rec["model"]] = per_class
    md = [f"# {sample}: evaluation", ""]
    if table:
        md.append(report.table1_markdown(table, records[0]["region"], validation))
    md += ["Pt particles (3D components; equivalent diameter) and volume fractions:", "",
           "| Model | particles | median diameter (nm) | detection P / R / F1 | Pt fraction "
           "| alumina fraction |",
           "|---|---|---|---|---|---|"]
    for rec in records:
        d = diameters.get(rec["model"], [])
        det = " / ".join(report.fmt(rec[k], digits=2) for k in (
            "detection_precision", "detection_recall", "detection_f1")) \
            if "detection_f1" in rec else rec.get("detection_note", "no labels")
        md.append(f"| {rec['model']} | {rec['particles']} | "
                  f"{report.fmt(np.median(d) if d else float('nan'), digits=2)} | {det} | "
                  f"{100 * rec['fraction_pt']:.3f} % | {100 * rec['fraction_alumina']:.2f} % |")
    if truth_rows:
        md.append(f"| truth | {len(truth_rows)} | "
                  f"{np.median([r['diameter_nm'] for r in truth_rows]):.2f} | — | — | — |")
    if agreement:
        md += ["", agreement_markdown(agreement)]
    return rows, "\n".join(md) + "\n"

"""Rule evaluate_model: one network's segmentation against the truth (where there is one), its Pt
particle table and its error-map figure."""

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stemtomo, without installing it

import numpy as np

from stemtomo import evaluation as ev
from stemtomo import figures, io
from stemtomo.errors import InputError
from stemtomo.readers import read_tiltseries
from stemtomo.runner import run_rule

log = logging.getLogger("stemtomo.evaluate")


def main(smk) -> None:
    vol = read_tiltseries(smk.input.volume)
    volume, px = vol.data, vol.pixel_size_nm or 1.0
    pred = read_tiltseries(smk.input.labels).data.astype(np.uint8)
    truth = None
    if smk.input.get("truth"):
        truth = read_tiltseries(smk.input.truth).data.astype(np.uint8)
        if truth.shape != pred.shape:
            raise InputError(smk.input.truth, f"labels have shape {truth.shape}, the segmentation "
                             f"{pred.shape}", "annotate the reconstruction itself (same (z, y, x))")
    val = json.loads(Path(smk.input.patches).read_text())["val_slices"] if smk.input.get("patches") \
        else None
    region, described = ev.evaluation_region(pred.shape[0], val)
    particles = ev.particles(pred, px)
    io.write_csv(smk.output.particles, particles.table, fields=ev.PARTICLE_FIELDS)
    record = {"model": smk.wildcards.model, "region": described, "z_range": list(region),
              "voxel_nm": px, **ev.volume_fractions(pred), "particles": len(particles.table)}
    if truth is not None:
        z0, z1 = region
        per_class = ev.class_metrics(pred[z0:z1], truth[z0:z1], px)
        record["classes"] = {ev.CLASS_NAMES[c]: m for c, m in per_class.items()}
        if not (truth[z0:z1] == ev.IGNORE).any():  # particles need the complete 3D truth
            record.update(ev.match_particles(particles, ev.particles(truth, px), region, px))
        else:
            record["detection_note"] = "truth is partial in the region: no particle matching"
        log.info("Dice (alumina, Pt, background) on %s: %.3f, %.3f, %.3f", described,
                 per_class[1]["dice"], per_class[2]["dice"], per_class[0]["dice"])
    figures.error_maps(smk.output.errors, volume, truth, pred, ev.error_slices(truth, region),
                       smk.wildcards.model)
    io.write_json(smk.output.json, record)
    log.info("throughput: %d particles; %.1f Mvoxel evaluated", len(particles.table),
             pred.size / 1e6)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

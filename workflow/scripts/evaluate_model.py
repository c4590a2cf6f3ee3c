"""Rule evaluate_model: one network's segmentation against the truth (where there is one), its Pt
particle table and its error-map figure."""

import json
import logging
from pathlib import Path

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.evaluate.figures import error_maps
from stemtomo.evaluate.particles import PARTICLE_FIELDS
from stemtomo.evaluate.report import error_slices
from stemtomo.evaluate.stage import evaluate_model

log = logging.getLogger("stemtomo.evaluate")


def main(smk) -> None:
    vol = read_tiltseries(smk.input.volume)
    px = vol.pixel_size_nm or 1.0
    pred = read_tiltseries(smk.input.labels).data.astype(np.uint8)
    truth = read_tiltseries(smk.input.truth).data.astype(np.uint8) if smk.input.get("truth") \
        else None
    val = json.loads(Path(smk.input.patches).read_text())["val_slices"] if smk.input.get("patches") \
        else None
    validation = json.loads(Path(smk.input.segment).read_text()).get("validation")
    record, found, region = evaluate_model(smk.wildcards.model, pred, truth, px, val,
                                           smk.input.get("truth", "truth"), validation,
                                           smk.params.planar)
    io.write_csv(smk.output.particles, found.table, fields=PARTICLE_FIELDS)
    error_maps(smk.output.errors, vol.data, truth, pred, error_slices(truth, region),
               smk.wildcards.model)
    io.write_json(smk.output.json, record)
    log.info("throughput: %d particles; %.1f Mvoxel evaluated", len(found.table), pred.size / 1e6)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

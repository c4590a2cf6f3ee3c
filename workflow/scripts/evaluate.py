"""Rule evaluate: Table 1 (metrics.csv, metrics.md) over every model, the truth's particle table
and the particle-size figure."""

import csv
import json
import logging
from pathlib import Path

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.labels import IGNORE
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.evaluate.figures import particle_sizes
from stemtomo.evaluate.particles import PARTICLE_FIELDS, particles
from stemtomo.evaluate.stage import summary

log = logging.getLogger("stemtomo.evaluate")


def main(smk) -> None:
    records = [json.loads(Path(p).read_text()) for p in smk.input.records]
    diameters = {}
    for rec, path in zip(records, smk.input.particles, strict=True):
        with open(path) as fh:
            diameters[rec["model"]] = [float(r["diameter_nm"]) for r in csv.DictReader(fh)]
    truth_rows: list[dict] = []
    if smk.input.get("truth"):
        truth = read_tiltseries(smk.input.truth).data.astype(np.uint8)
        if not (truth == IGNORE).any():
            truth_rows = particles(truth, records[0]["voxel_nm"], smk.params.planar).table
            diameters = {"truth": [r["diameter_nm"] for r in truth_rows], **diameters}
    io.write_csv(smk.output.truth_particles, truth_rows, fields=PARTICLE_FIELDS)
    particle_sizes(smk.output.figure, diameters)
    agreement = json.loads(Path(smk.input.agreement).read_text()) if smk.input.get("agreement") \
        else None
    rows, text = summary(smk.wildcards.sample, records, diameters, truth_rows, agreement)
    io.write_csv(smk.output.csv, rows, fields=list(dict.fromkeys(k for r in rows for k in r)))
    io.write_text(smk.output.md, text)
    log.info("\n%s", text)
    log.info("throughput: %d models evaluated", len(records))


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

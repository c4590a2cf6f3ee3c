"""Rule reconstruct_slab: reconstruct one slab of rows (along the tilt axis) of the aligned series."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stemtomo, without installing it

import numpy as np

from stemtomo import io
from stemtomo.readers import read_angle_file, read_tiltseries
from stemtomo.reconstruction import reconstruct
from stemtomo.runner import run_rule
from stemtomo.settings import job_settings
from stemtomo.slabs import slab_rows

log = logging.getLogger("stemtomo.reconstruct")


def main(smk) -> None:
    settings = job_settings(smk, "reconstruct")
    raw = read_tiltseries(smk.input.tiltseries)
    angles = read_angle_file(smk.input.tlt)
    index = int(smk.wildcards.slab)
    rows = slab_rows(raw.data.shape[1], settings["slabs"])[index]
    volume, record = reconstruct(raw.data, angles, settings, rows=rows, threads=smk.threads,
                                 source=smk.input.tiltseries, progress=True)
    with io.atomic_path(smk.output.slab) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, volume)
    io.write_json(smk.output.json, record)
    log.info("throughput: %s on %s, rows %d-%d, %d iterations in %.1f s, %.2f slices/s",
             record["algorithm"], record["backend"], rows[0], rows[1], record["iterations"],
             record["seconds"], record["slices_per_s"])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

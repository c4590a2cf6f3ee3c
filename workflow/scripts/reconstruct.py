"""Rule reconstruct: join the slabs into the volume, with its record and orthoslices."""

import json
import logging
from pathlib import Path

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.recon.figures import orthoslices
from stemtomo.recon.reconstruct import combine_residuals

log = logging.getLogger("stemtomo.reconstruct")


def main(smk) -> None:
    records = [json.loads(Path(p).read_text()) for p in smk.input.records]
    volume = np.concatenate([np.load(p) for p in smk.input.slabs], axis=1)
    px = read_tiltseries(smk.input.tiltseries).pixel_size_nm
    io.write_tiff(smk.output.volume, volume, px)
    residuals = combine_residuals(records)
    seconds = sum(r["seconds"] for r in records)
    record = {
        "algorithm": records[0]["algorithm"], "backend": records[0]["backend"],
        "iterations": records[0]["iterations"], "subsets": records[0]["subsets"],
        "shape_zyx": list(volume.shape), "voxel_size_nm": px, "slabs": len(records),
        "seconds_total": round(seconds, 3),
        "slices_per_s": round(volume.shape[1] / max(seconds, 1e-9), 2),
        "residuals": residuals, "slab_records": records,
    }
    io.write_json(smk.output.json, record)
    orthoslices(smk.output.figure, volume, residuals, record)
    log.info("throughput: %s on %s, %d slices in %.1f s of compute (%.2f slices/s), "
             "final residual %.4f", record["algorithm"], record["backend"], volume.shape[1],
             seconds, record["slices_per_s"], residuals[-1])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

"""Rule import_volume: a reconstruction made elsewhere becomes the sample's volume."""

import logging
import time

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.runner import run_rule
from stemtomo.recon.external import import_volume
from stemtomo.recon.figures import orthoslices

log = logging.getLogger("stemtomo.reconstruct")


def main(smk) -> None:
    t0 = time.perf_counter()
    volume, voxel, record = import_volume(smk.input.volume, smk.params.axes,
                                          smk.params.pixel_size_nm,
                                          f"samples.{smk.wildcards.sample}")
    io.write_tiff(smk.output.volume, volume, voxel)
    io.write_json(smk.output.json, record)
    orthoslices(smk.output.figure, volume, [], record)
    for note in record["notes"]:
        log.info("note: %s", note)
    log.info("throughput: %s %s (%s) → (z, y, x) %s, %.3g nm voxels, in %.1f s",
             smk.input.volume, tuple(record["stored_shape"]), record["stored_axes"],
             tuple(volume.shape), voxel, time.perf_counter() - t0)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

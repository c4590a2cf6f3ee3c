"""Rule reconstruct_mrc: the reconstruction as MRC (IMOD, tomviz), voxel size in the header."""

import logging
import time

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule

log = logging.getLogger("stemtomo.reconstruct")


def main(smk) -> None:
    t0 = time.perf_counter()
    volume = read_tiltseries(smk.input.volume)
    io.write_mrc(smk.output.mrc, volume.data.astype(np.float32), volume.pixel_size_nm)
    log.info("throughput: %s written, %.1f Mvoxel/s", smk.output.mrc,
             volume.data.size / 1e6 / max(time.perf_counter() - t0, 1e-9))


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

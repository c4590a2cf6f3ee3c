"""Rule reconstruct_mrc: the reconstruction as MRC (IMOD, tomviz), voxel size in the header."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stemtomo, without installing it

import numpy as np

from stemtomo import io
from stemtomo.readers import read_tiltseries
from stemtomo.runner import run_rule

log = logging.getLogger("stemtomo.reconstruct")


def main(smk) -> None:
    t0 = time.perf_counter()
    volume = read_tiltseries(smk.input.volume)
    io.write_mrc(smk.output.mrc, volume.data.astype(np.float32), volume.pixel_size_nm)
    log.info("throughput: %s written, %.1f Mvoxel/s", smk.output.mrc,
             volume.data.size / 1e6 / max(time.perf_counter() - t0, 1e-9))


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

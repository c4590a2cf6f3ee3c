"""Rule align: estimate the tilt-series alignment and resample the images once."""

import logging
import time

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.align.figures import alignment_qc
from stemtomo.align.settings import AlignSettings
from stemtomo.align.stage import align_tiltseries, alignment_record, apply_alignment
from stemtomo.core import io
from stemtomo.core.device import gpu_available
from stemtomo.core.readers import read_angle_file, read_tiltseries
from stemtomo.core.runner import run_rule

log = logging.getLogger("stemtomo.align")


def main(smk) -> None:
    t0 = time.perf_counter()
    settings = AlignSettings.from_section(smk.params.settings)
    raw = read_tiltseries(smk.input.tiltseries)
    angles = read_angle_file(smk.input.angles)
    stack = raw.data.astype(np.float32)
    gpu = gpu_available()
    if settings.projection_matching == "auto":
        log.info("projection matching %s (auto: %s)", "on" if gpu else "off",
                 "GPU present" if gpu else "no GPU; set align.projection_matching: true to run it on the CPU")
    result = align_tiltseries(stack, angles, settings, gpu=gpu, progress=True,
                              source=smk.input.tiltseries)
    keep = ~result.bad if settings.drop_bad_tilts else np.ones(len(angles), bool)
    aligned, fills = apply_alignment(stack, result, keep, threads=smk.threads)
    out = smk.output
    io.write_tiff(out.tiltseries, aligned, raw.pixel_size_nm)
    io.write_angles(out.tlt, angles[keep])
    io.write_xf(out.xf, result.axis_angle_deg, result.axis_offset_px, result.shifts_yx)
    io.write_json(out.json, alignment_record(result, keep, fills, raw.pixel_size_nm))
    alignment_qc(out.figure, stack, aligned, angles, result, keep)
    dt = time.perf_counter() - t0
    log.info("axis angle %.3f°, offset %.3f px, %d tilts flagged, method: %s", result.axis_angle_deg,
             result.axis_offset_px, int(result.bad.sum()), result.method)
    log.info("throughput: %d tilts of %s px aligned in %.1f s (%.1f tilts/s)", len(angles),
             "×".join(map(str, stack.shape[1:])), dt, len(angles) / dt)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

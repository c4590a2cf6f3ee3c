"""Rule align: estimate the tilt-series alignment and resample the images once."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stemtomo, without installing it

import numpy as np

from stemtomo import figures, io
from stemtomo.align import align_tiltseries, apply_alignment
from stemtomo.device import gpu_available
from stemtomo.readers import read_angle_file, read_tiltseries
from stemtomo.runner import run_rule

log = logging.getLogger("stemtomo.align")


def main(smk) -> None:
    t0 = time.perf_counter()
    settings = smk.params.settings
    raw = read_tiltseries(smk.input.tiltseries)
    angles = read_angle_file(smk.input.angles)
    stack = raw.data.astype(np.float32)
    gpu = gpu_available()
    if settings["projection_matching"] == "auto":
        log.info("projection matching %s (auto: %s)", "on" if gpu else "off",
                 "GPU present" if gpu else "no GPU; set align.projection_matching: true to run it on the CPU")
    result = align_tiltseries(stack, angles, settings, gpu=gpu, progress=True)
    keep = ~result.bad if settings["drop_bad_tilts"] else np.ones(len(angles), bool)
    aligned, fills = apply_alignment(stack, result, keep, threads=smk.threads)
    out = smk.output
    io.write_tiff(out.tiltseries, aligned, raw.pixel_size_nm)
    io.write_angles(out.tlt, angles[keep])
    io.write_xf(out.xf, result.axis_angle_deg, result.axis_offset_px, result.shifts_yx)
    io.write_json(out.json, {
        "method": result.method,
        "axis_angle_deg": result.axis_angle_deg,
        "axis_offset_px": result.axis_offset_px,
        "working_binning": result.binning,
        "pixel_size_nm": raw.pixel_size_nm,
        "convention": "raw r = R(axis_angle)(p + (0, axis_offset)) + shift, (y, x) from the image "
                      "centre; shifts gauge-fixed (see stemtomo.geometry)",
        "tilts": [{"index": i, "angle": float(a), "shift_y": float(s[0]), "shift_x": float(s[1]),
                   "quality": float(q) if np.isfinite(q) else None, "bad": bool(b), "kept": bool(k)}
                  for i, (a, s, q, b, k) in enumerate(zip(angles, result.shifts_yx, result.quality,
                                                          result.bad, keep, strict=True))],
        "fill_values": fills,
        "iterations": len(result.history["projection_matching"]),
        "residuals": result.history["projection_matching"],
        "axis_angle_search": result.history["axis_angle_search"],
        "offset_search": result.history["offset_search"],
        "timings_s": result.history["timings_s"],
    })
    figures.alignment_qc(out.figure, stack, aligned, angles, result, keep)
    dt = time.perf_counter() - t0
    log.info("axis angle %.3f°, offset %.3f px, %d tilts flagged, method: %s", result.axis_angle_deg,
             result.axis_offset_px, int(result.bad.sum()), result.method)
    log.info("throughput: %d tilts of %s px aligned in %.1f s (%.1f tilts/s)", len(angles),
             "×".join(map(str, stack.shape[1:])), dt, len(angles) / dt)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

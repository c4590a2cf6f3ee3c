"""Rule import_tiltseries: a raw stack in any supported format → the pipeline's float32 series."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stemtomo, without installing it

from stemtomo import figures, io
from stemtomo.importer import import_tiltseries
from stemtomo.readers import read_tiltseries
from stemtomo.runner import run_rule

log = logging.getLogger("stemtomo.import")


def main(smk) -> None:
    t0 = time.perf_counter()
    raw = read_tiltseries(smk.input.tiltseries)
    angles = smk.input.angles if "angles" in smk.input.keys() else smk.params.angles
    result = import_tiltseries(raw, angles, smk.params.pixel_size_nm, smk.params.settings,
                               sample_key=f"samples.{smk.wildcards.sample}")
    out = smk.output
    io.write_tiff(out.tiltseries, result.stack, result.pixel_size_nm)
    io.write_angles(out.angles, result.angles)
    io.write_json(out.meta, result.meta)
    figures.import_qc(out.figure, result.stack, result.angles, result.meta)
    for note in result.meta["notes"]:
        log.info("note: %s", note)
    for ex in result.meta["excluded"]:
        log.info("excluded tilt %d (%.2f°): %s", ex["index"], ex["angle"], ex["reason"])
    dt = time.perf_counter() - t0
    mpix = result.stack.size / 1e6
    log.info("throughput: %d tilts %s → %s, %.3g nm/px, in %.2f s (%.1f Mpixel/s)",
             len(result.angles), tuple(raw.data.shape), tuple(result.stack.shape),
             result.pixel_size_nm, dt, mpix / dt)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

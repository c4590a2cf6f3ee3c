"""Rule import_tiltseries: a raw stack in any supported format → the pipeline's float32 series."""

import logging
import time

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.prep.figures import import_qc
from stemtomo.prep.importer import import_tiltseries
from stemtomo.prep.settings import ImportSettings

log = logging.getLogger("stemtomo.import")


def main(smk) -> None:
    t0 = time.perf_counter()
    raw = read_tiltseries(smk.input.tiltseries)
    angles = smk.input.angles if "angles" in smk.input.keys() else smk.params.angles
    result = import_tiltseries(raw, angles, smk.params.pixel_size_nm,
                               ImportSettings.from_section(smk.params.settings),
                               sample_key=f"samples.{smk.wildcards.sample}")
    out = smk.output
    io.write_tiff(out.tiltseries, result.stack, result.pixel_size_nm)
    io.write_angles(out.angles, result.angles)
    io.write_json(out.meta, result.meta)
    import_qc(out.figure, result.stack, result.angles, result.meta)
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

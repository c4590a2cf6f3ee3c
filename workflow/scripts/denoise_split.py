"""Rule denoise_split: one slab of rows of one sub-reconstruction (a tilt subset of Noise2Inverse),
with the reconstruct section's algorithm, iterations and backend."""

import logging

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.readers import read_angle_file, read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.core.settings import job_settings
from stemtomo.core.slabs import slab_rows
from stemtomo.learn.denoise_split import reconstruct_split
from stemtomo.recon.settings import ReconstructSettings

log = logging.getLogger("stemtomo.denoise")


def main(smk) -> None:
    settings = ReconstructSettings.from_section(job_settings(smk, "reconstruct"))
    raw = read_tiltseries(smk.input.tiltseries)
    angles = read_angle_file(smk.input.tlt)
    split, splits = int(smk.wildcards.split), int(smk.params.splits)
    rows = slab_rows(raw.data.shape[1], settings.slabs)[int(smk.wildcards.slab)]
    volume, record = reconstruct_split(raw.data, angles, settings, split, splits, rows=rows,
                                       threads=smk.threads, source=smk.input.tiltseries,
                                       progress=True)
    io.write_npy(smk.output.slab, volume)
    io.write_json(smk.output.json, record)
    log.info("throughput: split %d of %d (%d tilts), %s on %s, rows %d-%d, %d iterations in "
             "%.1f s, %.2f slices/s", split, splits, len(record["tilts"]), record["algorithm"],
             record["backend"], rows[0], rows[1], record["iterations"], record["seconds"],
             record["slices_per_s"])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

"""Rule patches: train/validation patch sets from the reconstruction and its (partial) labels."""

import logging

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.labels import IGNORE
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.learn.figures import patch_examples
from stemtomo.learn.patches import extract, simulate_annotation
from stemtomo.learn.settings import PatchSettings

log = logging.getLogger("stemtomo.patches")


def main(smk) -> None:
    settings = PatchSettings.from_section(smk.params.settings)
    recon = read_tiltseries(smk.input.volume)
    volume = recon.data.astype(np.float32)
    labels = read_tiltseries(smk.input.labels).data  # any dtype: extract checks the values
    if smk.params.simulated:
        labels = simulate_annotation(labels, settings.annotate_slices, settings.annotation_noise,
                                     recon.pixel_size_nm or 1.0, settings.seed)
        log.info("synthetic sample: %d annotated slices kept, as a person would annotate",
                 int((labels != IGNORE).any(axis=(1, 2)).sum()))
    train, val, record = extract(volume, labels, settings, source=smk.input.labels)
    for path, ps in ((smk.output.train, train), (smk.output.val, val)):
        io.write_npz(path, images=ps.images, labels=ps.labels, slices=ps.slices,
                     centres=ps.centres, pt_centred=ps.pt_centred)
    io.write_json(smk.output.json, record)
    patch_examples(smk.output.figure, train, val)
    log.info("train slices %s, validation slices %s", record["train_slices"], record["val_slices"])
    log.info("class fractions (bg, alumina, Pt): train %s, val %s", record["train"]["fractions"],
             record["val"]["fractions"])
    log.info("throughput: %d + %d patches of %d² px", len(train.labels), len(val.labels),
             record["patch_size"])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

"""Rule patches: train/validation patch sets from the reconstruction and its (partial) labels."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stemtomo, without installing it

import numpy as np

from stemtomo import figures, io
from stemtomo.patches import extract, simulate_annotation
from stemtomo.readers import read_tiltseries
from stemtomo.runner import run_rule

log = logging.getLogger("stemtomo.patches")


def main(smk) -> None:
    settings = smk.params.settings
    volume = read_tiltseries(smk.input.volume).data.astype(np.float32)
    labels = read_tiltseries(smk.input.labels).data  # any dtype: extract checks the values
    if smk.params.simulated:
        labels = simulate_annotation(labels, settings["annotate_slices"])
        log.info("synthetic sample: %d annotated slices kept, as a person would annotate",
                 int((labels != 255).any(axis=(1, 2)).sum()))
    train, val, record = extract(volume, labels, settings, source=smk.input.labels)
    for path, ps in ((smk.output.train, train), (smk.output.val, val)):
        with io.atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, images=ps.images, labels=ps.labels, slices=ps.slices,
                                    centres=ps.centres, pt_centred=ps.pt_centred)
    io.write_json(smk.output.json, record)
    figures.patch_examples(smk.output.figure, train, val)
    log.info("train slices %s, validation slices %s", record["train_slices"], record["val_slices"])
    log.info("class fractions (bg, alumina, Pt): train %s, val %s", record["train"]["fractions"],
             record["val"]["fractions"])
    log.info("throughput: %d + %d patches of %d² px", len(train.labels), len(val.labels),
             record["patch_size"])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

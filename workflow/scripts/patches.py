"""Rule patches: train/validation patch sets from the reconstruction (or it and its denoised form,
denoise.input both) and its (partial) labels."""

import json
import logging
from pathlib import Path

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.learn.figures import patch_examples
from stemtomo.learn.patches import extract
from stemtomo.learn.settings import PatchSettings

log = logging.getLogger("stemtomo.patches")


def main(smk) -> None:
    settings = PatchSettings.from_section(smk.params.settings)
    volumes = [read_tiltseries(p).data.astype(np.float32) for p in smk.input.volumes]
    labels = read_tiltseries(smk.input.labels).data  # stemtomo's classes (rule annotations)
    split = None
    if smk.input.get("split"):  # a 2D dataset: its own training and validation images
        parts = json.loads(Path(smk.input.split).read_text())
        split = (parts["train_slices"], parts["val_slices"])
    train, val, record = extract(volumes, labels, settings, source=smk.input.labels, split=split)
    record["source_files"] = list(smk.input.volumes)
    for path, ps in ((smk.output.train, train), (smk.output.val, val)):
        io.write_npz(path, images=ps.images, labels=ps.labels, slices=ps.slices,
                     centres=ps.centres, pt_centred=ps.pt_centred)
    io.write_json(smk.output.json, record)
    patch_examples(smk.output.figure, train, val, sources=record["sources"])
    log.info("input: %s (%d channels)", " + ".join(smk.input.volumes), record["channels"])
    log.info("train slices %s, validation slices %s", record["train_slices"], record["val_slices"])
    log.info("class fractions (bg, alumina, Pt): train %s, val %s", record["train"]["fractions"],
             record["val"]["fractions"])
    log.info("throughput: %d + %d patches of %d² px", len(train.labels), len(val.labels),
             record["patch_size"])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

"""Rule segment: label every voxel of the reconstruction with one trained network."""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stemtomo, without installing it

import numpy as np
import torch

from stemtomo import io
from stemtomo.readers import read_tiltseries
from stemtomo.runner import run_rule
from stemtomo.segmentation import load_model, segment_volume
from stemtomo.training import pick_device

log = logging.getLogger("stemtomo.segment")


def main(smk) -> None:
    settings = smk.params.settings
    torch.set_num_threads(smk.threads)
    device = pick_device(settings["device"])
    raw = read_tiltseries(smk.input.volume)  # a (z, y, x) TIFF volume with its voxel size
    model, ck = load_model(smk.input.model, device)
    t0 = time.perf_counter()
    labels, probs = segment_volume(raw.data.astype(np.float32), model, ck["data"]["channels"],
                                   model.multiple, device, settings["batch_size"],
                                   settings["tta"], device.type == "cuda", settings["tile"],
                                   settings["overlap"], progress=True)
    seconds = time.perf_counter() - t0
    io.write_tiff(smk.output.labels, labels, raw.pixel_size_nm)
    if settings["probabilities"]:
        io.write_tiff(smk.params.probabilities, probs, raw.pixel_size_nm, axes="CZYX")
    fractions = (np.bincount(labels.ravel(), minlength=3) / labels.size).round(6).tolist()
    io.write_json(smk.output.json, {
        "model": smk.wildcards.model, "model_file": smk.input.model, "device": str(device),
        "tta": settings["tta"], "shape_zyx": list(labels.shape), "seconds": round(seconds, 2),
        "mvoxel_per_s": round(labels.size / 1e6 / seconds, 3), "class_fractions": fractions})
    log.info("class fractions (bg, alumina, Pt): %s", fractions)
    log.info("throughput: %d slices, %.2f Mvoxel/s on %s%s", labels.shape[0],
             labels.size / 1e6 / seconds, device, " with flip TTA" if settings["tta"] else "")


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

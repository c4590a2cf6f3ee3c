"""Rule segment_slab: label one slab of z-slices of the reconstruction with one trained network."""

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
from stemtomo.settings import job_settings
from stemtomo.slabs import slab_rows
from stemtomo.training import pick_device

log = logging.getLogger("stemtomo.segment")


def main(smk) -> None:
    settings = job_settings(smk, "segment")
    torch.set_num_threads(smk.threads)
    device = pick_device(settings["device"])
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed shapes: cuDNN's fastest kernels
    volume = read_tiltseries(smk.input.volume).data.astype(np.float32)  # (z, y, x) TIFF
    z_range = slab_rows(volume.shape[0], settings["slabs"], "segment.slabs")[int(smk.wildcards.slab)]
    model, ck = load_model(smk.input.model, device)
    if settings["compile"]:
        model = torch.compile(model)
    t0 = time.perf_counter()
    labels, probs = segment_volume(volume, model, ck["data"]["channels"], model.multiple, device,
                                   settings["batch_size"], settings["tta"], device.type == "cuda",
                                   settings["tile"], settings["overlap"], z_range, progress=True,
                                   probabilities=settings["probabilities"])
    seconds = time.perf_counter() - t0
    for path, array in ((smk.output.labels, labels),
                        (smk.output.probabilities, probs if probs is not None else np.empty(0, np.float16))):
        with io.atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, array)
    io.write_json(smk.output.json, {"z_range": list(z_range), "seconds": round(seconds, 3),
                                    "voxels": int(labels.size), "device": str(device)})
    log.info("throughput: slices %d-%d, %.2f Mvoxel/s on %s%s", *z_range,
             labels.size / 1e6 / seconds, device, " with flip TTA" if settings["tta"] else "")


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

"""Rule segment_slab: label one slab of z-slices of the reconstruction with one trained network,
or with all of them as the ensemble."""

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.core.settings import job_settings
from stemtomo.core.slabs import slab_rows
from stemtomo.learn.modelfile import load_model, segment_with
from stemtomo.learn.settings import SegmentSettings
from stemtomo.learn.training import pick_device

log = logging.getLogger("stemtomo.segment")


def main(smk) -> None:
    settings = SegmentSettings.from_section(job_settings(smk, "segment"))
    torch.set_num_threads(smk.threads)
    device = pick_device(settings.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed shapes: cuDNN's fastest kernels
    # (z, y, x) TIFFs; several (denoise.input both): stacked as the network's input sources
    sources = [read_tiltseries(p).data.astype(np.float32) for p in smk.input.volumes]
    volume = sources[0] if len(sources) == 1 else np.stack(sources)
    del sources
    z_range = slab_rows(volume.shape[-3], settings.slabs, "segment.slabs")[int(smk.wildcards.slab)]
    paths = [smk.input.model] if isinstance(smk.input.model, str) else list(smk.input.model)
    nets = [load_model(p, device) for p in paths]
    models = [torch.compile(n.model) if settings.compile else n.model for n in nets]
    for path, net in zip(paths, nets, strict=True):
        log.info("%s: Pt prior %s, input scaling %s", path,
                 "none" if net.priors is None else f"{net.priors[-1]:.4g}", settings.normalisation)
    if smk.input.get("calibration"):  # the ensemble: its own prior on its mean
        calibration = json.loads(Path(smk.input.calibration).read_text())
        ensemble_prior = calibration["priors"]
        validation = {smk.wildcards.model: calibration["validation"]}
        log.info("%s: ensemble Pt prior %s", smk.input.calibration,
                 "none" if ensemble_prior is None else f"{ensemble_prior[-1]:.4g}")
    else:
        ensemble_prior = None
        validation = {Path(p).parent.name: n.validation for p, n in zip(paths, nets, strict=True)}
    t0 = time.perf_counter()
    labels, probs = segment_with(nets, volume, device, settings, z_range, models, progress=True,
                                 ensemble_prior=ensemble_prior, source=", ".join(paths))
    seconds = time.perf_counter() - t0
    io.write_npy(smk.output.labels, labels)
    io.write_npy(smk.output.probabilities, probs if probs is not None else np.empty(0, np.float16))
    io.write_json(smk.output.json, {"z_range": list(z_range), "seconds": round(seconds, 3),
                                    "voxels": int(labels.size), "device": str(device),
                                    "networks": len(nets), "validation": validation})
    log.info("throughput: slices %d-%d, %.2f Mvoxel/s on %s%s", *z_range,
             labels.size / 1e6 / seconds, device, " with flip TTA" if settings.tta else "")


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

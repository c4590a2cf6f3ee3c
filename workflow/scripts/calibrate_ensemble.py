"""Rule calibrate_ensemble: the ensemble's own Pt prior, fitted on the whole annotated validation
slices of its networks' training data, as each network's is (see learn.modelfile)."""

import logging
import time

import numpy as np
import torch

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.runner import run_rule
from stemtomo.core.settings import job_settings
from stemtomo.learn.modelfile import calibrate_ensemble, load_model
from stemtomo.learn.settings import SegmentSettings
from stemtomo.learn.training import pick_device

log = logging.getLogger("stemtomo.segment")


def main(smk) -> None:
    settings = SegmentSettings.from_section(job_settings(smk, "segment"))
    torch.set_num_threads(smk.threads)
    device = pick_device(settings.device)
    paths = list(smk.input.models)
    nets = [load_model(p, device) for p in paths]
    with np.load(smk.input.val) as f:
        images, labels = f["images"], f["labels"]
    if images.shape[1] != nets[0].channels:
        raise ValueError(f"{smk.input.val}: {images.shape[1]} input channels, but the networks "
                         f"take {nets[0].channels}; rerun the patches and train rules")
    t0 = time.perf_counter()
    fit = calibrate_ensemble(nets, images, labels, device, settings.batch_size, settings.tta)
    seconds = time.perf_counter() - t0
    row = {k: round(v, 6) for k, v in fit["validation"].items()}
    io.write_json(smk.output.json, {"networks": paths, "validation_slices": int(len(images)),
                                    "tta": settings.tta, "priors": fit["priors"],
                                    "validation": row, "seconds": round(seconds, 3)})
    if fit["priors"] is None:
        log.info("a network is uncalibrated (train.calibrate_pt: false): the ensemble decides "
                 "by argmax like it; whole validation slices Pt Dice %.4f (P %.4f / R %.4f)",
                 row["val_dice_pt"], row["val_precision_pt"], row["val_recall_pt"])
    else:
        log.info("ensemble Pt prior %.4g; whole validation slices Pt Dice %.4f (P %.4f / R %.4f) "
                 "→ %.4f (P %.4f / R %.4f)", fit["priors"][-1], row["val_dice_pt"],
                 row["val_precision_pt"], row["val_recall_pt"], row["val_cal_dice_pt"],
                 row["val_cal_precision_pt"], row["val_cal_recall_pt"])
    log.info("throughput: %d validation slices through %d networks in %.1f s on %s",
             len(images), len(nets), seconds, device)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

"""Rule train: one network on the sample's patch sets; resumes from its checkpoint after a kill."""

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # stemtomo, without installing it

import numpy as np
import torch

from stemtomo import figures, io, provenance
from stemtomo.runner import run_rule
from stemtomo.training import pick_device, train

log = logging.getLogger("stemtomo.train")


def main(smk) -> None:
    settings = smk.params.settings
    torch.set_num_threads(smk.threads)
    device = pick_device(settings["device"])
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed shapes: cuDNN's fastest kernels
    log.info("device: %s%s", device, f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
    train_set, val_set = dict(np.load(smk.input.train)), dict(np.load(smk.input.val))
    patches = json.loads(Path(smk.input.patches).read_text())
    result = train(smk.wildcards.model, train_set, val_set, settings, smk.params.checkpoint,
                   progress=True)
    with io.atomic_path(smk.output.model) as tmp:
        torch.save({"state_dict": result.state_dict, "model": result.model_config,
                    "data": {"patch_size": patches["patch_size"], "channels": patches["channels"],
                             "normalisation_percentiles": patches["normalisation_percentiles"]},
                    "train": settings, "best_epoch": result.best_epoch,
                    "history": result.history, "provenance": provenance.record(smk)}, tmp)
    io.write_csv(smk.output.history, result.history)
    figures.learning_curves(smk.output.figure, result.history, result.best_epoch,
                            smk.wildcards.model)
    Path(smk.params.checkpoint).unlink(missing_ok=True)  # finished: nothing left to resume
    best = result.history[result.best_epoch - 1]
    rate = np.mean([h["patches_per_s"] for h in result.history])
    log.info("best epoch %d: val Dice alumina %.3f, Pt %.3f", result.best_epoch,
             best["val_dice_alumina"], best["val_dice_pt"])
    log.info("throughput: %d epochs, %.0f training patches/s on %s", len(result.history), rate, device)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

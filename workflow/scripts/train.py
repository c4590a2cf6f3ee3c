"""Rule train: one network on the sample's patch sets; resumes from its checkpoint after a kill."""

import json
import logging
from pathlib import Path

import numpy as np
import torch

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io, provenance
from stemtomo.core.runner import run_rule
from stemtomo.learn.figures import learning_curves
from stemtomo.learn.modelfile import initial_weights, save_model
from stemtomo.learn.settings import TrainSettings
from stemtomo.learn.training import model_config, pick_device, train

log = logging.getLogger("stemtomo.train")


def main(smk) -> None:
    settings = TrainSettings.from_section(smk.params.settings)
    torch.set_num_threads(smk.threads)
    device = pick_device(settings.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed shapes: cuDNN's fastest kernels
    log.info("device: %s%s", device, f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
    train_set, val_set = dict(np.load(smk.input.train)), dict(np.load(smk.input.val))
    patches = json.loads(Path(smk.input.patches).read_text())
    init = None
    if settings.init_from == "previous":
        config = model_config(smk.wildcards.model, patches["channels"], settings)
        init, why = initial_weights(smk.params.previous, config)
        log.info("init_from previous: %s", why)
    result = train(smk.wildcards.model, train_set, val_set, settings, smk.params.checkpoint,
                   progress=True, init_state=init)
    save_model(smk.output.model, result, patches, settings, provenance.record(smk))
    io.copy_file(smk.output.model, smk.params.previous)  # the next round may start from it
    io.write_csv(smk.output.history, result.history)
    learning_curves(smk.output.figure, result.history, result.best_epoch, smk.wildcards.model)
    Path(smk.params.checkpoint).unlink(missing_ok=True)  # finished: nothing left to resume
    best = result.history[result.best_epoch - 1]
    rate = np.mean([h["patches_per_s"] for h in result.history])
    log.info("best epoch %d of %d on the whole validation slices: Dice alumina %.3f, Pt %.3f "
             "(P %.3f R %.3f)", result.best_epoch, len(result.history), best["val_dice_alumina"],
             best["val_dice_pt"], best["val_precision_pt"], best["val_recall_pt"])
    if result.priors is not None:
        log.info("Pt calibration: prior %.4g (log %+.3f) → Pt Dice %.3f (P %.3f R %.3f)",
                 result.priors[-1], best["val_pt_log_prior"], best["val_cal_dice_pt"],
                 best["val_cal_precision_pt"], best["val_cal_recall_pt"])
    log.info("throughput: %d epochs, %.0f training patches/s on %s", len(result.history), rate, device)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

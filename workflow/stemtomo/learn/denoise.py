"""Noise2Inverse (Hendriksen, Pelt & Batenburg, IEEE TCI 2020): self-supervised denoising of a
reconstruction from K sub-reconstructions of disjoint tilt subsets (learn.denoise_split).

A network learns to predict one sub-reconstruction from the mean of the others (the X:1
strategy); their noise is independent, so the best it can do is predict the noise-free object.
As in the paper, the output is the network's mean over the K inputs it was trained on (each the mean
of K−1 splits), not the network on the full reconstruction, whose lower noise it never saw (on the
test phantom the two agree to 0.005 in relative error). The network is one of stemtomo's U-Nets
(learn.models) with a one-channel regression output and a mean squared error; its optimiser steps
are the training stage's own (learn.training.training_step: flips and 90° rotations applied alike
to input and target). A checkpoint after every epoch (weights, optimiser, schedule, random
generators) lets a killed job resume exactly where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ..core.intensity import Normalisation
from .denoise_data import SplitPairs, context_planes, from_planes, to_planes
from .models import build_model
from .settings import DenoiseSettings
from .streaming import to_device
from .training import fingerprint, load_checkpoint, on_device, pick_device, save_checkpoint, training_step

log = logging.getLogger("stemtomo.denoise")


def denoiser_config(settings: DenoiseSettings) -> dict:
    """What builds the network (learn.models.build_model): one output channel, a regression."""
    return {"name": settings.model, "in_channels": settings.channels, "classes": 1,
            "base": settings.base, "depth": settings.depth}


def squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Noise2Inverse's loss: the mean squared difference from the held-out sub-reconstruction."""
    return torch.mean((prediction[:, 0] - target) ** 2)


@dataclass
class _Run:
    """What a denoiser's training carries from epoch to epoch (and through its checkpoint)."""
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator
    device: torch.device
    fmt: torch.memory_format
    history: list[dict] = field(default_factory=list)
    epoch: int = 0
    resumed_from: int = 0


def _setup(settings: DenoiseSettings) -> _Run:
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = build_model(**denoiser_config(settings)).to(device).to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.epochs)
    return _Run(model, opt, sched, np.random.default_rng(settings.seed), device, fmt)


def _identity(settings: DenoiseSettings, pairs: SplitPairs) -> str:
    """A checkpoint is resumed only by the run that wrote it: same settings, same sub-volumes."""
    none = np.zeros(0, np.uint8)
    return fingerprint(f"denoise:{settings.model}", settings,
                       *({"images": t, "labels": none} for t in pairs.targets))


def _resume(run: _Run, path: str, identity: str) -> None:
    if load_checkpoint(path, run, identity) is not None:
        run.resumed_from = run.epoch
        log.info("resuming the denoiser from epoch %d", run.epoch)


def _epoch(run: _Run, pairs: SplitPairs, settings: DenoiseSettings) -> dict:
    """Fresh random pairs, one pass over them, a schedule step."""
    run.model.train()
    t0 = time.perf_counter()
    inputs, targets = pairs.draw(run.rng, settings.patches_per_epoch, settings.patch_size,
                                 settings.context, settings.bright_fraction)
    x, y = on_device(inputs, run.device), on_device(targets, run.device)
    total, batches = torch.zeros((), device=run.device), 0
    for i in range(0, len(x), settings.batch_size):
        idx = np.arange(i, min(i + settings.batch_size, len(x)))
        total = total + training_step(run.model, run.opt, squared_error, x, y, idx, run.rng, 0.0,
                                      run.device, run.fmt, False)
        batches += 1
    loss = float(total) / batches  # waits for the device: the timing is honest
    run.epoch += 1
    row = {"epoch": run.epoch, "loss": loss, "lr": run.opt.param_groups[0]["lr"],
           "patches_per_s": len(x) / (time.perf_counter() - t0)}
    run.sched.step()
    return row


def train_denoiser(pairs: SplitPairs, settings: DenoiseSettings, checkpoint: str,
                   stop_after: int | None = None, progress: bool = False) -> _Run:
    """Train on the X:1 pairs for `settings.epochs`, resuming from `checkpoint` when this very run
    wrote it; `stop_after` ends this call after that many epochs (to test resuming)."""
    if min(pairs.total.shape[1:]) < settings.patch_size:
        raise ValueError("planes smaller than the patch size: pad them with to_planes(minimum=)")
    run = _setup(settings)
    identity = _identity(settings, pairs)
    _resume(run, checkpoint, identity)
    bar = tqdm(total=settings.epochs, initial=run.epoch, desc="denoiser", unit="epoch",
               disable=not progress)
    ran = 0
    while run.epoch < settings.epochs and (stop_after is None or ran < stop_after):
        row = _epoch(run, pairs, settings)
        run.history.append(row)
        save_checkpoint(checkpoint, run, identity)
        log.info("epoch %d: loss %.3g, %.0f patches/s", row["epoch"], row["loss"],
                 row["patches_per_s"])
        bar.update()
        ran += 1
    bar.close()
    return run


def apply_denoiser(model: torch.nn.Module, inputs, ny: int, context: int, device: torch.device,
                   plane_size: int, progress: bool = False) -> np.ndarray:
    """The network on every plane: `inputs(plane indices)` gives the (n, 2c+1, nz', nx') input
    planes (with their 2.5D neighbours); batches are sized to the planes."""
    model.eval()
    batch = int(np.clip(2**22 // plane_size, 1, 32))
    out = []
    with torch.no_grad():
        for y0 in tqdm(range(0, ny, batch), desc="denoise", unit="batch", disable=not progress):
            near = context_planes(np.arange(y0, min(y0 + batch, ny)), ny, context)
            x = to_device(np.ascontiguousarray(inputs(near), dtype=np.float32), device)
            out.append(model(x)[:, 0].float().cpu().numpy())
    return np.concatenate(out)


def denoise_splits(model: torch.nn.Module, pairs: SplitPairs, context: int, device: torch.device,
                   progress: bool = False) -> np.ndarray:
    """Noise2Inverse's output (X:1): the network applied to each split's input (the mean of the
    other sub-reconstructions, what it was trained on) and the K outputs averaged."""
    ny = pairs.total.shape[0]
    total = np.zeros(pairs.total.shape, np.float32)
    for j in range(pairs.k):
        total += apply_denoiser(model, lambda near, j=j: pairs.inputs(j, near), ny, context,
                                device, pairs.total[0].size, progress)
    return total / pairs.k


def blended(volume: np.ndarray, denoised: np.ndarray, weight: float) -> np.ndarray:
    """weight·denoised + (1 − weight)·volume: a partial denoising keeps some of the input's
    high frequencies, where an MSE network blurs edges of particles a few voxels wide."""
    if weight == 1.0:
        return denoised
    return (weight * denoised + (1.0 - weight) * volume).astype(np.float32)


def denoise_volume(volume: np.ndarray, splits: list[np.ndarray], settings: DenoiseSettings,
                   checkpoint: str, progress: bool = False) -> tuple[np.ndarray, dict]:
    """The denoised (nz, ny, nx) volume from the K sub-reconstructions, in the units of the full
    reconstruction `volume` (same shape; it sets the scaling and the floor), with a record of the
    run (loss curve, timings, device)."""
    if any(s.shape != volume.shape for s in splits):
        raise ValueError(f"sub-reconstructions {[s.shape for s in splits]} differ from the "
                         f"volume's shape {volume.shape}")
    norm = Normalisation.of(volume)  # one scaling for all: the sub-volumes share the units
    multiple = 2**settings.depth
    t0 = time.perf_counter()
    pairs = SplitPairs([to_planes(s, norm, multiple, settings.patch_size) for s in splits])
    run = train_denoiser(pairs, settings, checkpoint, progress=progress)
    t1 = time.perf_counter()
    planes = denoise_splits(run.model, pairs, settings.context, run.device, progress)
    # An MSE network undershoots beside bright Pt; the volume never goes below the input's floor
    # (0 for EM reconstructions, whose voxels are non-negative).
    denoised = np.maximum(from_planes(planes, volume.shape, norm), min(float(volume.min()), 0.0))
    denoised = blended(volume, denoised, settings.blend)
    t2 = time.perf_counter()
    if not np.all(np.isfinite(denoised)):
        raise FloatingPointError("the denoiser produced NaN or Inf voxels")
    return denoised, {
        "model": denoiser_config(settings), "device": str(run.device), "epochs": run.epoch,
        "resumed_from_epoch": run.resumed_from, "history": run.history,
        "loss": [h["loss"] for h in run.history], "normalisation": norm.as_list(),
        "output": f"mean of the network over the {pairs.k} X:1 inputs (mean of the other splits)"
                  + ("" if settings.blend == 1.0 else f", weighted {settings.blend:g} against "
                     f"{1 - settings.blend:g} of the reconstruction"),
        "blend": settings.blend,
        "seconds": {"train": round(t1 - t0, 3), "apply": round(t2 - t1, 3)},
    }

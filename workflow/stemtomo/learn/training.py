"""Training of the segmentation networks on patch sets, resumable after a kill.

Every epoch ends with a checkpoint holding the model, optimiser, schedule, history, the best
weights so far and both random generators, so a job killed at any point continues as if it had
never stopped. Validation segments the whole annotated validation slices through segmentation's
own inference (labelled pixels only, never Pt-enriched patches, whose class prior would reward
over-predicting Pt); the best epoch is the one of highest mean Dice of the annotated foreground
classes there, γ-alumina and Pt (`selection: foreground`, as nnU-Net selects on its mean foreground
Dice), or of highest Pt Dice (`selection: pt`), after the Pt calibration (learn.calibration) when
it is on. On noisy data the Pt Dice of whole slices is flat over most epochs, and Pt alone picked
under-trained early epochs poor on γ-alumina. Early stopping waits for the learning rate to decay to
`stop_lr_fraction` of its start, so it never cuts a schedule short before its decay.

An epoch can be the best only if every class annotated in the validation slices reaches
`min_class_dice` there: a network that has collapsed onto the other classes (on the hard preset
one never learnt γ-alumina, Dice 0.000, while its Pt Dice peaked) is never selected, and a run in
which no epoch qualifies fails with the classes and the fixes instead of saving such a model.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ..core.errors import StemtomoError
from ..core.io import atomic_path
from ..core.labels import BACKGROUND, CLASS_NAMES, CLASSES, PT, class_counts
from . import calibration
from .losses import make_loss
from .models import build_model
from .segmentation import predict_slices
from .settings import TrainSettings
from .streaming import to_device

log = logging.getLogger("stemtomo.train")


class CollapsedTraining(StemtomoError):
    """No epoch segmented every annotated class of the validation slices."""


@dataclass
class TrainResult:
    state_dict: dict
    history: list[dict]
    best_epoch: int
    model_config: dict
    priors: list[float] | None = None  # class weights of the softmax (the Pt calibration)


def pick_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def augment(images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator,
            jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Label-safe augmentation of a batch on its own device: flips and 90° rotations (exact for
    labels), intensity gain/offset jitter. The random draws come from `rng` (NumPy, so a checkpoint
    resumes them); the pixel work is whole-batch tensor ops, so on a GPU the patches never leave it.
    """
    n, dev = len(images), images.device
    k = rng.integers(4, size=n)
    flip = to_device(rng.random(n) < 0.5, dev)
    gain = to_device((1 + rng.normal(0, jitter, n)).astype(np.float32), dev) if jitter > 0 else None
    offset = to_device(rng.normal(0, jitter * 0.1, n).astype(np.float32), dev) if jitter > 0 else None
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
    out_i, out_l = images.clone(), labels.clone()
    for r in range(1, 4):  # one batched rotation per quarter-turn count
        sel = to_device(np.flatnonzero(k == r), dev)
        if len(sel):
            out_i[sel] = torch.rot90(images[sel], r, dims=(-2, -1))
            out_l[sel] = torch.rot90(labels[sel], r, dims=(-2, -1))
    if gain is not None:
        out_i = out_i * gain[:, None, None, None] + offset[:, None, None, None]
    return out_i, out_l


def on_device(array: np.ndarray, device: torch.device, share: float = 0.25) -> torch.Tensor:
    """The patch set as a tensor on `device` when it takes under `share` of the free GPU memory
    (so batches and augmentation never cross the bus), else in pinned host memory."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cuda":
        return t
    if t.nbytes < share * torch.cuda.mem_get_info(device)[0]:
        return t.to(device)
    return t.pin_memory()


def training_step(forward, opt, loss_fn, images: torch.Tensor, labels: torch.Tensor,
                  idx: np.ndarray, rng: np.random.Generator, jitter: float, device: torch.device,
                  fmt: torch.memory_format, amp: bool) -> torch.Tensor:
    """One optimiser step on the patches at `idx`: gather, augment on the device, forward,
    backward. Returns the loss without a host sync. bench/learn.py times this same step."""
    x, y = augment(images[to_device(idx, images.device)].to(device, non_blocking=True),
                   labels[to_device(idx, labels.device)].to(device, non_blocking=True), rng, jitter)
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = loss_fn(forward(x.contiguous(memory_format=fmt)).float(), y)
    loss.backward()
    opt.step()
    return loss.detach()


def _loss_fn(settings: TrainSettings):
    options = {"focal": {"gamma": settings.focal_gamma, "weights": list(settings.class_weights)},
               "weighted_ce": {"weights": list(settings.class_weights)}}.get(settings.loss, {})
    return make_loss(settings.loss, **options)


def save_checkpoint(path: str, run, identity: str, **extra) -> None:
    """Everything a resumable run (`run`: model, opt, sched, rng, history, epoch) needs to go on
    exactly where it stopped, plus `extra`; written atomically (a kill mid-write never corrupts
    the last checkpoint)."""
    state = {"model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
             "scheduler": run.sched.state_dict(), "history": run.history, "epoch": run.epoch,
             "numpy_rng": run.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
             "fingerprint": identity, **extra}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str, run, identity: str) -> dict | None:
    """Restore `run` from `path` if this very run (same `identity`) wrote it; the checkpoint
    (for its `extra` entries), else None."""
    # on the host: the RNG state must stay a CPU tensor, and the best weights are kept there
    ck = torch.load(path, map_location="cpu", weights_only=False) if os.path.exists(path) else None
    if ck is not None and ck.get("fingerprint") != identity:
        log.info("ignoring %s: written by a run with other settings or data", path)
        ck = None
    if ck is None:
        return None
    run.model.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])
    run.sched.load_state_dict(ck["scheduler"])
    run.history, run.epoch = ck["history"], ck["epoch"]
    run.rng.bit_generator.state = ck["numpy_rng"]
    torch.set_rng_state(ck["torch_rng"])
    return ck


def _as_arrays(state: dict) -> dict:
    """A state dict in the shape fingerprint() hashes (its tensors as arrays)."""
    flat = np.concatenate([v.detach().cpu().float().numpy().ravel() for v in state.values()])
    return {"images": flat, "labels": np.zeros(0, np.uint8)}


def fingerprint(model_name: str, settings: TrainSettings, *patch_sets: dict) -> str:
    """Identity of a training run (model, settings, every byte of its patch sets): a checkpoint is
    resumed only by the run that wrote it. sha256 reads ~1 GB/s, so this costs well under a
    second for the patch sets of a real run."""
    import hashlib
    import json

    h = hashlib.sha256(json.dumps([model_name, settings.as_dict()], sort_keys=True).encode())
    for patch_set in patch_sets:
        for key in ("images", "labels"):
            a = np.ascontiguousarray(patch_set[key])
            h.update(f"{key}{a.shape}{a.dtype}".encode())
            h.update(memoryview(a).cast("B"))
    return h.hexdigest()


@dataclass
class _Run:
    """Everything a training run carries from epoch to epoch (and through a checkpoint)."""
    model: torch.nn.Module
    forward: object                 # the model, or its torch.compile'd form (shared weights)
    opt: torch.optim.Optimizer
    sched: object
    rng: np.random.Generator
    device: torch.device
    amp: bool
    fmt: torch.memory_format
    config: dict
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"score": -1.0, "epoch": 0, "state": None})
    epoch: int = 0


def train(model_name: str, train_set: dict, val_set: dict, settings: TrainSettings,
          checkpoint: str, stop_after: int | None = None, progress: bool = False,
          init_state: dict | None = None) -> TrainResult:
    """Train `model_name` on a patch set (a dict with images (n, c, p, p) and labels (n, p, p))
    and validate it on whole slices (`val_set`: images (m, c, H, W), labels (m, H, W)).

    `init_state` (weights of the same architecture, e.g. the previous round's) replaces the
    random initial weights, and the rate becomes `lr × finetune_lr_fraction`. Resumes from
    `checkpoint` if it exists and was written by the same run (same model, settings, data and
    initial weights). `stop_after` ends this call after that many epochs (used to test
    resuming); normally training runs to `epochs` or early stopping.
    """
    if init_state is not None:  # fine-tuning: the whole schedule at a fraction of the rate
        log.info("fine-tuning at lr %.3g (train.finetune_lr_fraction %.3g of %.3g)",
                 settings.lr * settings.finetune_lr_fraction, settings.finetune_lr_fraction,
                 settings.lr)
        settings = settings.replace(lr=settings.lr * settings.finetune_lr_fraction)
    run = _setup(model_name, int(train_set["images"].shape[1]), settings)
    if init_state is not None:
        run.model.load_state_dict(init_state)
    images, labels = on_device(train_set["images"], run.device), on_device(train_set["labels"], run.device)
    val_images = on_device(val_set["images"], run.device)
    if val_images.shape[1] != images.shape[1]:
        raise ValueError(f"validation slices have {val_images.shape[1]} channels, the training "
                         f"patches {images.shape[1]}: rerun the patches stage")
    if images.shape[-1] % run.model.multiple:
        raise ValueError(f"patch size {images.shape[-1]} is not a multiple of {run.model.multiple} "
                         f"(2^depth): change patches.patch_size or train.depth")
    loss_fn = _loss_fn(settings)
    identity = fingerprint(model_name, settings, train_set, val_set,
                           *([_as_arrays(init_state)] if init_state is not None else []))
    _resume(run, checkpoint, identity, model_name)
    annotated = annotated_classes(val_set["labels"])
    ran = 0
    while run.epoch < settings.epochs:
        if _stop_early(run, settings):
            log.info("early stop at epoch %d: no validation gain (train.selection %s) for %d "
                     "epochs and the learning rate down to %.3g", run.epoch, settings.selection,
                     settings.patience, _lr(run))
            break
        _epoch(run, images, labels, val_images, val_set["labels"], annotated, loss_fn, settings,
               progress)
        save_checkpoint(checkpoint, run, identity, best=run.best)
        ran += 1
        if stop_after is not None and ran >= stop_after:
            break
    if run.history and not run.best["epoch"] and run.epoch >= settings.epochs:
        raise CollapsedTraining(_collapse_message(model_name, run.history, annotated,
                                                  settings.min_class_dice))
    state = run.best["state"] or {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    best = run.history[run.best["epoch"] - 1] if run.best["epoch"] else {}
    priors = calibration.priors_from_log(best["val_pt_log_prior"]) \
        if "val_pt_log_prior" in best else None
    return TrainResult(state, run.history, run.best["epoch"], run.config, priors)


def class_dice(row: dict, name: str) -> float:
    """A class's validation Dice as segmentation will decide it (after the Pt calibration when
    the row has it)."""
    return float(row.get(f"val_cal_dice_{name}", row[f"val_dice_{name}"]))


def annotated_classes(labels: np.ndarray) -> list[int]:
    """The classes with at least one labelled voxel in `labels` (the validation slices)."""
    counts = class_counts(labels)
    return [c for c in CLASSES if counts[c]]


def missing_classes(row: dict, annotated: list[int], floor: float) -> list[str]:
    """The `annotated` classes whose Dice in this epoch's `row` is below `floor`: what the
    network does not segment yet (none when floor is 0)."""
    if floor <= 0:
        return []
    return [CLASS_NAMES[c] for c in annotated if class_dice(row, CLASS_NAMES[c]) < floor]


def selection_score(row: dict, annotated: list[int], selection: str) -> float:
    """What picks the best epoch: Pt Dice (`pt`), or the mean Dice of the `annotated` foreground
    classes (`foreground`); calibrated when the row is."""
    if selection == "pt":
        return class_dice(row, CLASS_NAMES[PT])
    names = [CLASS_NAMES[c] for c in annotated if c != BACKGROUND] or [CLASS_NAMES[PT]]
    return float(np.mean([class_dice(row, n) for n in names]))


def _collapse_message(model_name: str, history: list[dict], annotated: list[int],
                      floor: float) -> str:
    missing = sorted({c for row in history for c in missing_classes(row, annotated, floor)})
    worst = []
    for name in missing:
        best = max(history, key=lambda row, n=name: class_dice(row, n))
        worst.append(f"{name} at most {class_dice(best, name):.3f} (epoch {best['epoch']})")
    return (f"train {model_name}: in none of its {len(history)} epochs did the network segment "
            f"every class annotated in the validation slices (Dice at least train.min_class_dice "
            f"= {floor:g}): {', '.join(worst)}. It has collapsed onto the other classes, so no "
            f"model was saved.\n  fix: rerun with another train.seed or more train.epochs; check "
            f"that the training slices annotate {' and '.join(missing)} (patches.json counts the "
            f"voxels of each class); with loss focal or weighted_ce raise its train.class_weights; "
            f"train.min_class_dice: 0 accepts such a network")


def _lr(run: _Run) -> float:
    return float(run.opt.param_groups[0]["lr"])


def _stop_early(run: _Run, settings: TrainSettings) -> bool:
    """No better validation for `patience` epochs, and the rate has decayed (cosine: near the
    schedule's end; plateau: after its reductions) to `stop_lr_fraction` of its start."""
    stale = run.best["epoch"] and run.epoch - run.best["epoch"] >= settings.patience
    return bool(stale) and _lr(run) <= settings.stop_lr_fraction * settings.lr * (1 + 1e-9)


def model_config(model_name: str, channels: int, settings: TrainSettings) -> dict:
    """What builds the network (learn.models.build_model), as stored in model.pt."""
    return {"name": model_name, "in_channels": channels, "classes": len(CLASSES),
            "base": settings.base, "depth": settings.depth}


def _setup(model_name: str, channels: int, settings: TrainSettings) -> _Run:
    """Seeded model, optimiser and schedule on the configured device."""
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    config = model_config(model_name, channels, settings)
    # NHWC on GPUs: the fast layout for bf16 convolutions (as in segmentation and bench/learn.py)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = build_model(**config).to(device).to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.epochs)
    else:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", patience=3, factor=0.5)
    forward = torch.compile(model) if settings.compile else model  # shares model's weights
    return _Run(model, forward, opt, sched, np.random.default_rng(settings.seed), device,
                device.type == "cuda" and settings.amp, fmt, config)


def _resume(run: _Run, checkpoint: str, identity: str, model_name: str) -> None:
    """Continue from `checkpoint` if this very run wrote it."""
    ck = load_checkpoint(checkpoint, run, identity)
    if ck is None:
        return
    run.best = ck["best"]
    log.info("resuming %s from epoch %d (best validation score %.3f)", model_name, run.epoch,
             run.best["score"])


def _epoch(run: _Run, images: torch.Tensor, labels: torch.Tensor, val_images: torch.Tensor,
           val_labels: np.ndarray, annotated: list[int], loss_fn, settings: TrainSettings,
           progress: bool) -> None:
    """One pass over the training patches, then validation on the whole slices, schedule step
    and best weights."""
    run.model.train()
    t0 = time.perf_counter()
    order = run.rng.permutation(len(images))
    total, batches = torch.zeros((), device=run.device), 0
    for i in tqdm(range(0, len(order), settings.batch_size), desc=f"epoch {run.epoch + 1}",
                  unit="batch", disable=not progress, leave=False):
        idx = np.sort(order[i:i + settings.batch_size])
        loss = training_step(run.forward, run.opt, loss_fn, images, labels, idx, run.rng,
                             settings.intensity_jitter, run.device, run.fmt, run.amp)
        total, batches = total + loss, batches + 1  # no per-step host sync
    mean_loss = float(total) / max(batches, 1)  # waits for the GPU: the timing is honest
    seconds = time.perf_counter() - t0
    if not np.isfinite(mean_loss):  # the weights are lost: nothing later in the run can help
        raise StemtomoError(
            f"train {run.config['name']}: the training loss became {mean_loss} in epoch "
            f"{run.epoch + 1} (lr {_lr(run):.3g}); no model was saved.\n  fix: lower train.lr "
            f"(e.g. to a third){' or set train.amp: false' if run.amp else ''}")
    run.model.eval()
    probs = predict_slices(run.model, val_images, run.model.multiple, settings.batch_size,
                           run.device, amp=run.amp).numpy()
    scores = calibration.validate(probs, val_labels, settings.calibrate_pt)
    run.epoch += 1
    row = {"epoch": run.epoch, "loss": mean_loss, "lr": _lr(run), **scores,
           "patches_per_s": len(images) / seconds}
    run.history.append(row)
    score = selection_score(row, annotated, settings.selection)
    if settings.schedule == "cosine":
        run.sched.step()
    else:
        run.sched.step(score)
    missing = missing_classes(row, annotated, settings.min_class_dice)
    if score > run.best["score"] and not missing:
        run.best = {"score": score, "epoch": run.epoch,
                    "state": {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}}
    log.info("epoch %d: loss %.4f, val Dice bg %.3f alumina %.3f Pt %.3f (P %.3f R %.3f)%s, "
             "%.0f patches/s%s", run.epoch, row["loss"], row["val_dice_background"],
             row["val_dice_alumina"], row["val_dice_pt"], row["val_precision_pt"],
             row["val_recall_pt"], _calibrated(row), row["patches_per_s"],
             f"; not selectable, Dice below train.min_class_dice for {', '.join(missing)}"
             if missing else "")


def _calibrated(row: dict) -> str:
    if "val_pt_log_prior" not in row:
        return ""
    return (f"; calibrated (Pt log prior {row['val_pt_log_prior']:+.2f}) Pt {row['val_cal_dice_pt']:.3f} "
            f"(P {row['val_cal_precision_pt']:.3f} R {row['val_cal_recall_pt']:.3f})")

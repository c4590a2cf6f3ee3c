"""model.pt, the trained network's file: written by the train rule, read by segmentation.

It holds the weights, the configuration that rebuilds the network, the data it expects (patch
size, input channels, the normalisation of each of its training input volumes), the Pt
calibration (class priors of the softmax), the training settings, the best epoch with the
history, and the provenance record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core.errors import InputError
from ..core.intensity import Normalisation, source_stack
from ..core.io import atomic_path
from .models import build_model
from .segmentation import segment_volume
from .settings import SegmentSettings, TrainSettings
from .training import TrainResult


@dataclass
class ModelFile:
    model: nn.Module            # rebuilt, weights loaded, in eval mode
    channels: int               # input channels: (2k + 1) per source for 2.5D context k
    patch_size: int
    normalisations: tuple[Normalisation, ...]  # of the training's input volumes (sources)
    priors: list[float] | None  # class weights of the softmax (Pt calibration); None: argmax
    record: dict                # everything else stored (train settings, history, provenance)

    @property
    def validation(self) -> dict:
        """The best epoch's figures on the whole validation slices (the history row)."""
        best = int(self.record.get("best_epoch") or 0)
        history = self.record.get("history") or []
        return dict(history[best - 1]) if 0 < best <= len(history) else {}


def save_model(path: str, result: TrainResult, patches: dict, settings: TrainSettings,
               provenance: dict) -> None:
    """Write model.pt atomically; `patches` is the patch stage's record (patches.json)."""
    with atomic_path(path) as tmp:
        torch.save({"state_dict": result.state_dict, "model": result.model_config,
                    "data": {"patch_size": patches["patch_size"], "channels": patches["channels"],
                             # older patches.json: the percentiles as a list
                             "normalisation": patches.get("normalisation",
                                                          patches.get("normalisation_percentiles")),
                             "source_normalisations": patches.get("source_normalisations")},
                    "priors": result.priors,
                    "train": settings.as_dict(), "best_epoch": result.best_epoch,
                    "history": result.history, "provenance": provenance}, tmp)


def load_model(path: str, device: torch.device) -> ModelFile:
    """Rebuild the network of a model.pt on `device`."""
    ck = torch.load(path, map_location=device, weights_only=False)
    model = build_model(**ck["model"]).to(device)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    data = ck["data"]
    # older files: one source, its percentiles as a list
    norms = data.get("source_normalisations") or [
        data.get("normalisation", data.get("normalisation_percentiles"))]
    return ModelFile(model, int(data["channels"]), int(data["patch_size"]),
                     tuple(Normalisation.from_record(n) for n in norms), ck.get("priors"), ck)


def input_scaling(nets: list[ModelFile], volume: np.ndarray, setting: str,
                  source: str = "model.pt") -> tuple[Normalisation, ...]:
    """The normalisation segmentation applies to each input source of `volume` ((z, y, x), or
    (sources, z, y, x)): the training's, stored in the model file(s) (`model`), or the model's
    method recomputed on each source (`volume`)."""
    first = nets[0].normalisations
    if any(n.normalisations != first for n in nets[1:]):
        raise ValueError(f"{source}: the ensemble's networks were trained on differently "
                         "normalised data; retrain them on the same patches")
    if any(n.channels != nets[0].channels for n in nets[1:]):
        raise ValueError(f"{source}: the ensemble's networks take different input channels")
    given = source_stack(volume)
    if len(given) != len(first):
        raise InputError(source, f"the network was trained on {len(first)} input volume(s) "
                         f"(denoise.input), segmentation was given {len(given)}",
                         "set denoise.input as when the networks were trained, or rerun the "
                         "patches and train rules with this config")
    if setting == "model":
        return first
    return tuple(Normalisation.of(v, n.method) for v, n in zip(given, first, strict=True))


def _multiple(nets: list[ModelFile]) -> int:
    """What an ensemble's slices are padded to: the least common multiple of its 2^depths."""
    return math.lcm(*(n.model.multiple for n in nets))


def segment_with(nets: list[ModelFile], volume: np.ndarray, device: torch.device,
                 settings: SegmentSettings, z_range: tuple[int, int] | None = None,
                 models: list[torch.nn.Module] | None = None, progress: bool = False,
                 ensemble_prior: list[float] | None = None, source: str = "model.pt"
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Segment `volume` ((z, y, x), or (sources, z, y, x) for a network trained on several input
    volumes) with one network, or with several as an ensemble (the mean of their
    calibrated probabilities, scaled by `ensemble_prior`: see calibrate_ensemble), each with its
    stored Pt calibration. `models` may replace the networks by compiled forms of them;
    `source` names the model files in errors."""
    models = models or [n.model for n in nets]
    scaling = input_scaling(nets, volume, settings.normalisation, source)
    one = len(nets) == 1
    return segment_volume(volume, models[0] if one else models, device, settings,
                          channels=nets[0].channels, multiple=_multiple(nets),
                          amp=device.type == "cuda", z_range=z_range, normalisation=scaling,
                          priors=nets[0].priors if one else [n.priors for n in nets],
                          ensemble_prior=ensemble_prior, progress=progress)


def calibrate_ensemble(nets: list[ModelFile], images: np.ndarray, labels: np.ndarray,
                       device: torch.device, batch: int = 4, tta: bool = False) -> dict:
    """The ensemble's own Pt calibration, fitted like each network's (calibration module) on the
    whole validation slices (`images` normalised (n, c, H, W), `labels` (n, H, W)): the mean of
    calibrated probabilities is not calibrated itself (on the hard benchmark it called 1-2 % more
    Pt than annotated, recall above precision). Returns the class weights for segment_with's
    `ensemble_prior` (None when a network is uncalibrated: the ensemble then decides by argmax
    like it) and the validation figures (val_*, val_cal_* with the prior)."""
    from .calibration import priors_from_log, validate
    from .segmentation import predict_slices

    calibrate = all(n.priors is not None for n in nets)
    with torch.no_grad():
        probs = predict_slices([n.model for n in nets], torch.as_tensor(images),
                               _multiple(nets), batch, device,
                               [n.priors for n in nets], amp=device.type == "cuda",
                               tta=tta).numpy()
    row = validate(probs, labels, calibrate)
    return {"priors": priors_from_log(row["val_pt_log_prior"]) if calibrate else None,
            "validation": row}


def initial_weights(path: str, config: dict) -> tuple[dict | None, str]:
    """The weights of an earlier model.pt (e.g. previous.pt) when they fit the network `config`
    describes, and why or why not (for the log)."""
    from pathlib import Path

    if not Path(path).is_file():
        return None, f"no earlier weights at {path}: training from scratch"
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if ck.get("model") != config:
        return None, (f"the weights in {path} are of another network ({ck.get('model')}), not "
                      f"{config}: training from scratch")
    return ck["state_dict"], f"starting from the weights in {path} (best epoch {ck['best_epoch']})"

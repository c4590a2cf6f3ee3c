"""model.pt, the trained network's file: written by the train rule, read by segmentation.

It holds the weights, the configuration that rebuilds the network, the data it expects (patch
size, input channels, the normalisation of its training data), the training settings, the best
epoch with the history, and the provenance record.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core.intensity import Normalisation
from ..core.io import atomic_path
from .models import build_model
from .settings import TrainSettings
from .training import TrainResult


@dataclass
class ModelFile:
    model: nn.Module            # rebuilt, weights loaded, in eval mode
    channels: int               # input channels (2k + 1 for 2.5D context k)
    patch_size: int
    normalisation: Normalisation  # of the training volume
    record: dict                # everything else stored (train settings, history, provenance)


def save_model(path: str, result: TrainResult, patches: dict, settings: TrainSettings,
               provenance: dict) -> None:
    """Write model.pt atomically; `patches` is the patch stage's record (patches.json)."""
    with atomic_path(path) as tmp:
        torch.save({"state_dict": result.state_dict, "model": result.model_config,
                    "data": {"patch_size": patches["patch_size"], "channels": patches["channels"],
                             "normalisation_percentiles": patches["normalisation_percentiles"]},
                    "train": settings.as_dict(), "best_epoch": result.best_epoch,
                    "history": result.history, "provenance": provenance}, tmp)


def load_model(path: str, device: torch.device) -> ModelFile:
    """Rebuild the network of a model.pt on `device`."""
    ck = torch.load(path, map_location=device, weights_only=False)
    model = build_model(**ck["model"]).to(device)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    data = ck["data"]
    return ModelFile(model, int(data["channels"]), int(data["patch_size"]),
                     Normalisation(*data["normalisation_percentiles"]), ck)


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

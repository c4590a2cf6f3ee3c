"""Slice-wise segmentation of a whole volume with a trained network.

Each x-y slice (with its 2.5D neighbours as channels when the model was trained so) goes through
the network whole, reflect-padded to a multiple of 2^depth and cropped back. Optional test-time
augmentation averages the softmax over the four flips.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .models import build_model
from .patches import normalise


def load_model(path: str, device: torch.device) -> tuple[nn.Module, dict]:
    """Rebuild a network from its model.pt (weights + the configuration needed to build it)."""
    ck = torch.load(path, map_location=device, weights_only=False)
    model = build_model(**ck["model"]).to(device)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck


def _flips(x: torch.Tensor) -> list[tuple[torch.Tensor, tuple[int, ...]]]:
    return [(x, ()), (x.flip(-1), (-1,)), (x.flip(-2), (-2,)), (x.flip(-2, -1), (-2, -1))]


def segment_volume(volume: np.ndarray, model: nn.Module, channels: int, multiple: int,
                   device: torch.device, batch: int = 4, tta: bool = False, amp: bool = False,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(z, y, x) volume → uint8 labels and float16 class probabilities (classes, z, y, x)."""
    norm, _ = normalise(volume.astype(np.float32))
    nz, ny, nx = norm.shape
    k = channels // 2
    py, px = (-ny) % multiple, (-nx) % multiple
    labels = np.empty((nz, ny, nx), np.uint8)
    probs = None
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for z0 in tqdm(range(0, nz, batch), desc="segment", unit="batch", disable=not progress):
            zs = np.arange(z0, min(z0 + batch, nz))
            idx = np.clip(zs[:, None] + np.arange(-k, k + 1)[None, :], 0, nz - 1)
            x = np.pad(norm[idx], ((0, 0), (0, 0), (0, py), (0, px)), mode="reflect")
            xt = torch.from_numpy(x).to(device)
            p = 0
            for view, dims in (_flips(xt) if tta else [(xt, ())]):
                out = torch.softmax(model(view).float(), dim=1)
                p = p + (out.flip(dims) if dims else out)
            p = (p / (4 if tta else 1))[:, :, :ny, :nx].cpu().numpy()
            if probs is None:
                probs = np.empty((p.shape[1], nz, ny, nx), np.float16)
            probs[:, zs] = p.transpose(1, 0, 2, 3)
            labels[zs] = p.argmax(axis=1)
    return labels, probs

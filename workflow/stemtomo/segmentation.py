"""Slice-wise segmentation of a whole volume with a trained network.

Each x-y slice (with its 2.5D neighbours as channels when the model was trained so) goes through
the network whole, reflect-padded to a multiple of 2^depth and cropped back; slices larger than
`tile` go through in overlapping tiles whose softmax outputs are blended with a Gaussian window
(as nnU-Net does), so tile borders leave no seams. Optional test-time augmentation averages the
softmax over the four flips.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .models import build_model
from .patches import intensity_range


def load_model(path: str, device: torch.device) -> tuple[nn.Module, dict]:
    """Rebuild a network from its model.pt (weights + the configuration needed to build it)."""
    ck = torch.load(path, map_location=device, weights_only=False)
    model = build_model(**ck["model"]).to(device)
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck


def _flips(x: torch.Tensor) -> list[tuple[torch.Tensor, tuple[int, ...]]]:
    return [(x, ()), (x.flip(-1), (-1,)), (x.flip(-2), (-2,)), (x.flip(-2, -1), (-2, -1))]


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    return sorted(set(list(range(0, size - tile, step)) + [size - tile]))


def gaussian_window(tile: int, sigma_fraction: float = 0.125) -> np.ndarray:
    c = (tile - 1) / 2
    g = np.exp(-((np.arange(tile) - c) ** 2) / (2 * (sigma_fraction * tile) ** 2))
    w = np.outer(g, g)
    return np.maximum(w / w.max(), 1e-3).astype(np.float32)  # never zero: every pixel is covered


def _softmax_tiled(model: nn.Module, x: torch.Tensor, tile: int, overlap: float,
                   tta: bool) -> torch.Tensor:
    """Class probabilities of a (b, c, H, W) batch, whole or in Gaussian-blended tiles."""
    def run(v: torch.Tensor) -> torch.Tensor:
        p = 0
        for view, dims in (_flips(v) if tta else [(v, ())]):
            out = torch.softmax(model(view).float(), dim=1)
            p = p + (out.flip(dims) if dims else out)
        return p / (4 if tta else 1)

    b, _, h, w = x.shape
    if h <= tile and w <= tile:
        return run(x)
    th, tw = min(tile, h), min(tile, w)
    step_h, step_w = max(1, int(th * (1 - overlap))), max(1, int(tw * (1 - overlap)))
    window = torch.from_numpy(gaussian_window(tile)[:th, :tw]).to(x.device)
    acc, norm = None, torch.zeros((h, w), device=x.device)
    for y0 in _starts(h, th, step_h):
        for x0 in _starts(w, tw, step_w):
            p = run(x[:, :, y0:y0 + th, x0:x0 + tw]) * window
            if acc is None:
                acc = torch.zeros((b, p.shape[1], h, w), device=x.device)
            acc[:, :, y0:y0 + th, x0:x0 + tw] += p
            norm[y0:y0 + th, x0:x0 + tw] += window
    return acc / norm


def segment_volume(volume: np.ndarray, model: nn.Module, channels: int, multiple: int,
                   device: torch.device, batch: int = 4, tta: bool = False, amp: bool = False,
                   tile: int = 1024, overlap: float = 0.25, z_range: tuple[int, int] | None = None,
                   progress: bool = False, probabilities: bool = True
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """(z, y, x) volume → uint8 labels and, if asked, float16 class probabilities (classes, z, y, x).

    `z_range` = [start, stop) segments only those slices (a slab job); normalisation and 2.5D
    context still use the whole volume, so slabs join into exactly the whole-volume result.
    Normalisation, padding, softmax and argmax run on `device`: per batch only the raw slices go
    up and uint8 labels (and float16 probabilities when asked) come back.
    """
    if tile % multiple:
        raise ValueError(f"tile {tile} must be a multiple of {multiple} (2^depth)")
    lo, hi = intensity_range(volume)
    span = max(hi - lo, 1e-12)
    nz, ny, nx = volume.shape
    k = channels // 2
    py, px = (-ny) % multiple, (-nx) % multiple
    z_lo, z_hi = z_range or (0, nz)
    labels = np.empty((z_hi - z_lo, ny, nx), np.uint8)
    probs = None
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = model.to(memory_format=fmt)  # NHWC: the fast layout for bf16 convolutions on GPUs
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for z0 in tqdm(range(z_lo, z_hi, batch), desc="segment", unit="batch", disable=not progress):
            zs = np.arange(z0, min(z0 + batch, z_hi))
            idx = np.clip(zs[:, None] + np.arange(-k, k + 1)[None, :], 0, nz - 1)
            raw = torch.from_numpy(np.ascontiguousarray(volume[idx], dtype=np.float32))
            x = (raw.to(device, non_blocking=True) - lo) / span
            if py or px:  # pad to a multiple of 2^depth by reflection
                mode = "reflect" if py < ny and px < nx else "replicate"
                x = torch.nn.functional.pad(x, (0, px, 0, py), mode=mode)
            p = _softmax_tiled(model, x.contiguous(memory_format=fmt), tile, overlap, tta)[:, :, :ny, :nx]
            labels[zs - z_lo] = p.argmax(dim=1).to(torch.uint8).cpu().numpy()
            if probabilities:
                if probs is None:
                    probs = np.empty((p.shape[1], z_hi - z_lo, ny, nx), np.float16)
                probs[:, zs - z_lo] = p.half().cpu().numpy().transpose(1, 0, 2, 3)
    return labels, probs

"""Slice-wise segmentation of a whole volume with a trained network.

Each x-y slice (with its 2.5D neighbours as channels when the model was trained so) goes through
the network whole, reflect-padded to a multiple of 2^depth and cropped back; slices larger than
`tile` go through in overlapping tiles whose softmax outputs are blended with a Gaussian window
(as nnU-Net does), so tile borders leave no seams. Optional test-time augmentation averages the
softmax over the four flips. Each network's softmax may be corrected by class priors (the Pt
calibration stored in model.pt: p_c ∝ w_c·p_c, Saerens et al., Neural Comput. 2002); an ensemble
averages its networks' corrected probabilities, which may be corrected again by the ensemble's own
prior (fitted on the validation slices like each network's). A network trained on several input
volumes (sources, e.g. the reconstruction and its denoised form) gets them stacked as channels,
source after source, each with its own normalisation and 2.5D context, as learn.patches stacks
them. Training's validation predicts whole
slices through the same functions (`predict_slices`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..core.intensity import Normalisation, source_stack
from .settings import SegmentSettings
from .streaming import Downloader, Sent, Uploader, to_device


def _flips(x: torch.Tensor) -> list[tuple[torch.Tensor, tuple[int, ...]]]:
    return [(x, ()), (x.flip(-1), (-1,)), (x.flip(-2), (-2,)), (x.flip(-2, -1), (-2, -1))]


def _starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    return sorted(set(list(range(0, size - tile, step)) + [size - tile]))


def gaussian_window(shape: tuple[int, int], sigma_fraction: float = 0.125) -> np.ndarray:
    """Blending weights of one tile: a separable Gaussian (σ = `sigma_fraction` of each side).
    Each 1D factor is floored at 1e-3 so every pixel is covered; flooring the 2D product instead
    would give all tiles the same weight along a tile's edge rows and leave seams there."""
    def factor(n: int) -> np.ndarray:
        g = np.exp(-((np.arange(n) - (n - 1) / 2) ** 2) / (2 * (sigma_fraction * n) ** 2))
        return np.maximum(g / g.max(), 1e-3)
    return np.outer(factor(shape[0]), factor(shape[1])).astype(np.float32)


Priors = Sequence[Sequence[float] | None]


def _reweighted(p: torch.Tensor, prior: Sequence[float] | None) -> torch.Tensor:
    """(b, classes, H, W) probabilities scaled by class weights and renormalised."""
    if prior is None:
        return p
    p = p * torch.tensor(prior, device=p.device)[None, :, None, None]
    return p / p.sum(dim=1, keepdim=True)


def _class_scores(models: Sequence[nn.Module], x: torch.Tensor, tile: int, overlap: float,
                  tta: bool, probabilities: bool, priors: Priors,
                  ensemble_prior: Sequence[float] | None = None) -> torch.Tensor:
    """Per-class scores of a (b, c, H, W) batch whose argmax is the label: the logits (plus the
    log priors) when one network's whole-slice pass decides it and no probabilities are asked
    for (softmax is monotonic), else probabilities: each network's softmax flip-averaged, scaled
    by its priors and renormalised, averaged over the networks (scaled by `ensemble_prior`),
    blended over Gaussian-weighted tiles."""
    b, _, h, w = x.shape
    whole = h <= tile and w <= tile
    if whole and not tta and not probabilities and len(models) == 1:
        logits = models[0](x)
        if priors[0] is None:
            return logits
        log_w = torch.tensor([math.log(v) for v in priors[0]], device=x.device)
        return logits.float() + log_w[None, :, None, None]

    def run(v: torch.Tensor) -> torch.Tensor:
        total = 0
        for model, prior in zip(models, priors, strict=True):
            p = 0
            for view, dims in (_flips(v) if tta else [(v, ())]):
                out = torch.softmax(model(view).float(), dim=1)
                p = p + (out.flip(dims) if dims else out)
            total = total + _reweighted(p / (4 if tta else 1), prior)
        return _reweighted(total / len(models), ensemble_prior)

    if whole:
        return run(x)
    th, tw = min(tile, h), min(tile, w)
    step_h, step_w = max(1, int(th * (1 - overlap))), max(1, int(tw * (1 - overlap)))
    window = torch.from_numpy(gaussian_window((th, tw))).to(x.device)
    acc, norm = None, torch.zeros((h, w), device=x.device)
    for y0 in _starts(h, th, step_h):
        for x0 in _starts(w, tw, step_w):
            p = run(x[:, :, y0:y0 + th, x0:x0 + tw]) * window
            if acc is None:
                acc = torch.zeros((b, p.shape[1], h, w), device=x.device)
            acc[:, :, y0:y0 + th, x0:x0 + tw] += p
            norm[y0:y0 + th, x0:x0 + tw] += window
    return acc / norm


def _padded_scores(models: Sequence[nn.Module], x: torch.Tensor, multiple: int, tile: int,
                   overlap: float, tta: bool, probabilities: bool, priors: Priors,
                   fmt: torch.memory_format = torch.contiguous_format,
                   ensemble_prior: Sequence[float] | None = None) -> torch.Tensor:
    """_class_scores of slices of any size: reflect-padded to a multiple of 2^depth, cropped back."""
    ny, nx = x.shape[-2:]
    py, px = (-ny) % multiple, (-nx) % multiple
    if py or px:
        mode = "reflect" if py < ny and px < nx else "replicate"
        x = torch.nn.functional.pad(x, (0, px, 0, py), mode=mode)
    return _class_scores(models, x.contiguous(memory_format=fmt), tile, overlap, tta,
                         probabilities, priors, ensemble_prior)[:, :, :ny, :nx]


def _members(model: nn.Module | Sequence[nn.Module], priors,
             ensemble_prior=None) -> tuple[list[nn.Module], list]:
    """The networks (one, or an ensemble's) and one prior vector (or None) for each."""
    models = list(model) if isinstance(model, list | tuple) else [model]
    if ensemble_prior is not None and len(models) < 2:
        raise ValueError("an ensemble prior needs an ensemble (two or more networks)")
    if priors is None:
        return models, [None] * len(models)
    priors = list(priors) if isinstance(model, list | tuple) else [priors]
    if len(priors) != len(models):
        raise ValueError(f"{len(priors)} prior vectors for {len(models)} networks")
    return models, priors


def predict_slices(model: nn.Module | Sequence[nn.Module], images: torch.Tensor, multiple: int,
                   batch: int, device: torch.device, priors=None, tile: int = 1024,
                   overlap: float = 0.25, amp: bool = False, tta: bool = False,
                   ensemble_prior: Sequence[float] | None = None) -> torch.Tensor:
    """Class probabilities (n, classes, H, W) on the host of normalised whole slices (n, c, H, W),
    in batches on `device` (where the networks are): what segment_volume computes for them."""
    models, priors = _members(model, priors, ensemble_prior)
    out = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        for i in range(0, len(images), batch):
            x = images[i:i + batch].to(device, non_blocking=True)
            out.append(_padded_scores(models, x, multiple, tile, overlap, tta, True, priors,
                                      ensemble_prior=ensemble_prior).float().cpu())
    return torch.cat(out)


def labels_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """uint8 argmax over dim 1, the first maximum winning as in torch.argmax. Elementwise passes
    because torch's CPU argmax over a short, strided class axis is ~7× slower."""
    best = scores[:, 0]
    labels = torch.zeros(best.shape, dtype=torch.uint8, device=scores.device)
    for c in range(1, scores.shape[1]):
        labels.masked_fill_(scores[:, c] > best, c)
        best = torch.maximum(best, scores[:, c])
    return labels


def segment_volume(volume: np.ndarray, model: nn.Module | Sequence[nn.Module],
                   device: torch.device, settings: SegmentSettings, *, channels: int,
                   multiple: int, amp: bool = False, z_range: tuple[int, int] | None = None,
                   normalisation: Normalisation | Sequence[Normalisation] | None = None,
                   priors=None,
                   ensemble_prior: Sequence[float] | None = None,
                   progress: bool = False, block_voxels: int = 2**26
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """(z, y, x) volume, or a (sources, z, y, x) stack of input volumes, → uint8 labels (z, y, x)
    and, with settings.probabilities, float16 class probabilities (classes, z, y, x).

    `model` is one network or a list (an ensemble: the mean of their probabilities); `priors`
    the class-prior weights of its softmax (one sequence per network of an ensemble; None: none),
    `ensemble_prior` those of an ensemble's mean probabilities.
    `channels` is the network's input (2.5D context: (channels / sources) // 2 neighbours each
    side), `normalisation` one scaling per source (by default each source's own),
    `multiple` its 2^depth (an ensemble's: their least common multiple). `z_range` = [start,
    stop) segments only those slices (a slab job); normalisation and 2.5D context still use the
    whole volume, so slabs join into exactly the whole-volume result. The volume goes to `device`
    in blocks of about `block_voxels` (all sources, with their 2.5D context), the next block
    travelling while the current one is computed; normalisation,
    padding, softmax and argmax run there, and each block's uint8 labels (and float16
    probabilities) come back while the next is computed.
    Batches are always full (the last one repeats its final slice), so a compiled model and
    cuDNN's autotuner see one shape.
    """
    if settings.tile % multiple:
        raise ValueError(f"tile {settings.tile} must be a multiple of {multiple} (2^depth)")
    stack = source_stack(volume)
    n_src, nz, ny, nx = stack.shape
    if z_range is not None and not 0 <= z_range[0] < z_range[1] <= nz:
        raise ValueError(f"z_range {tuple(z_range)} is not a non-empty range of the {nz} slices")
    if normalisation is None:
        norms = [Normalisation.of(v) for v in stack]
    else:
        norms = [normalisation] if isinstance(normalisation, Normalisation) else list(normalisation)
    if len(norms) != n_src or channels % n_src or (channels // n_src) % 2 == 0:
        raise ValueError(f"{n_src} input volume(s) with {len(norms)} normalisation(s) for a "
                         f"network of {channels} input channels: need one normalisation per "
                         "volume and an odd number of channels (2.5D context) per volume")
    models, priors = _members(model, priors, ensemble_prior)
    z_lo, z_hi = z_range or (0, nz)
    batch = settings.batch_size
    per_block = -(-max(1, block_voxels // (n_src * ny * nx)) // batch) * batch  # a multiple of batch
    blocks = [(c0, min(c0 + per_block, z_hi)) for c0 in range(z_lo, z_hi, per_block)]
    labels = np.empty((z_hi - z_lo, ny, nx), np.uint8)
    probs = None
    k = channels // n_src // 2
    up, down = Uploader(device), Downloader(device)

    def send(c0: int, c1: int) -> tuple[int, Sent]:
        s0 = max(c0 - k, 0)
        return s0, up.send(stack[:, s0:min(c1 + k, nz)])

    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    models = [m.to(memory_format=fmt) for m in models]  # NHWC: fast bf16 convolutions on GPUs
    bar = tqdm(total=z_hi - z_lo, desc="segment", unit="slice", disable=not progress)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        upcoming = send(*blocks[0])
        for i, (c0, c1) in enumerate(blocks):
            s0, sent = upcoming
            if i + 1 < len(blocks):
                upcoming = send(*blocks[i + 1])  # travels while this block is computed
            raw = up.receive(sent).float()
            parts = [n.apply(raw[j:j + 1]) for j, n in enumerate(norms)]
            x_block = parts[0] if n_src == 1 else torch.cat(parts)  # one source: no copy
            lab, prob = _segment_block(models, (priors, ensemble_prior), x_block, s0, (c0, c1),
                                       nz, k, multiple, settings, fmt, bar)
            results = [(lab, labels[c0 - z_lo:c1 - z_lo])]
            if prob is not None:
                if probs is None:
                    probs = np.empty((prob.shape[0], z_hi - z_lo, ny, nx), np.float16)
                results.append((prob, probs[:, c0 - z_lo:c1 - z_lo]))
            down.fetch(results)
        down.drain()
    bar.close()
    return labels, probs


def _segment_block(models: list[nn.Module], priors: tuple, x_block: torch.Tensor, s0: int,
                   block: tuple[int, int], nz: int, k: int, multiple: int,
                   settings: SegmentSettings, fmt: torch.memory_format,
                   bar) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels (and probabilities) of the slices `block` = [c0, c1) on the device, in full batches,
    from the normalised block `x_block` (sources, z, y, x) that starts at slice s0 (its 2.5D
    context included); `priors` = (each network's, the ensemble's)."""
    c0, c1 = block
    _, _, ny, nx = x_block.shape
    device, batch = x_block.device, settings.batch_size
    offsets = np.arange(-k, k + 1)
    lab = torch.empty((c1 - c0, ny, nx), dtype=torch.uint8, device=device)
    prob = None
    for z0 in range(c0, c1, batch):
        n = min(batch, c1 - z0)
        zs = np.minimum(np.arange(z0, z0 + batch), c1 - 1)
        idx = np.clip(zs[:, None] + offsets[None, :], 0, nz - 1) - s0
        x = x_block[:, to_device(idx, device)]  # (sources, batch, 2k + 1, y, x)
        x = x.transpose(0, 1).reshape(batch, -1, ny, nx)  # source after source, as patches
        scores = _padded_scores(models, x, multiple, settings.tile,
                                settings.overlap, settings.tta, settings.probabilities,
                                priors[0], fmt, priors[1])[:n]
        lab[z0 - c0:z0 - c0 + n] = labels_from_scores(scores)
        if settings.probabilities:
            if prob is None:
                prob = torch.empty((scores.shape[1], c1 - c0, ny, nx), dtype=torch.float16,
                                   device=device)
            prob[:, z0 - c0:z0 - c0 + n] = scores.transpose(0, 1)
        bar.update(n)
    return lab, prob

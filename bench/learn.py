"""Benchmark: training patches/s (data pipeline included) for each network, eager and compiled,
and segmentation Mvoxel/s: the network alone, the whole `segment_volume` (eager and compiled),
and the pipeline around the network (a 1×1-conv stand-in). On a GPU: 256² patches, batch 32,
base 32, depth 4, bf16 (targets ≥ 2000 / 1500 / 1300 patches/s for U-Net / attention /
attention-res, ≥ 400 Mvoxel/s inference of 1024³). On the CPU a smaller configuration shows the
relative costs. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

import numpy as np
import torch
from common import section, settings  # bench/common.py, beside this script

from stemtomo.core.labels import MODELS
from stemtomo.learn.losses import dice_ce
from stemtomo.learn.models import build_model
from stemtomo.learn.segmentation import segment_volume
from stemtomo.learn.settings import SegmentSettings
from stemtomo.learn.training import on_device, training_step


def training_rate(name: str, device, patch: int, batch: int, base: int, depth: int,
                  steps: int, amp: bool, compile: bool = False) -> float:
    rng = np.random.default_rng(0)
    images = on_device(rng.random((batch * 4, 1, patch, patch), dtype=np.float32), device)
    labels = on_device(rng.integers(0, 3, (batch * 4, patch, patch)).astype(np.uint8), device)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = build_model(name, base=base, depth=depth).to(device).to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if compile else model

    def step() -> None:  # the training stage's own step, data pipeline included
        idx = np.sort(rng.choice(len(images), batch, replace=False))
        training_step(forward, opt, dice_ce, images, labels, idx, rng, 0.1, device, fmt, amp)

    for _ in range(3 if compile else 2):  # warm-up (and compilation)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def inference_rate(model, device, side: int, batch: int, amp: bool) -> float:
    """Model-only inference Mvoxel/s on whole (side × side) slices (no host I/O)."""
    x = torch.randn(batch, 1, side, side, device=device).contiguous(
        memory_format=torch.channels_last if device.type == "cuda" else torch.contiguous_format)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        model(x)
        model(x)  # warm-up (and compilation)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(8):
            model(x).argmax(dim=1)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return 8 * x.numel() / 1e6 / (time.perf_counter() - t0)


class Pointwise(torch.nn.Module):
    """A 1×1 convolution: segmentation with it measures the pipeline around the network
    (reading, transfers, normalisation, padding, argmax, labels back), not the network."""

    def __init__(self, multiple: int) -> None:
        super().__init__()
        self.conv, self.multiple = torch.nn.Conv2d(1, 3, 1), multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def segment_rate(model, device, volume: np.ndarray, batch: int, amp: bool) -> float:
    """End-to-end `segment_volume` Mvoxel/s (labels only, the rule's default output), after a
    warm-up on a few slices of the same size (compilation, cuDNN autotuning)."""
    run = {"channels": 1, "multiple": model.multiple, "amp": amp}
    options = settings(SegmentSettings, batch_size=batch, probabilities=False)
    segment_volume(volume[:batch], model, device, options, **run)
    t0 = time.perf_counter()
    segment_volume(volume, model, device, options, **run)
    return volume.size / 1e6 / (time.perf_counter() - t0)


def main() -> None:
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    torch.set_num_threads(os.cpu_count() or 1)
    torch.backends.cudnn.benchmark = True
    cfg = dict(patch=256, batch=32, base=32, depth=4, steps=30, amp=True) if gpu else \
        dict(patch=64, batch=8, base=16, depth=3, steps=5, amp=False)
    out = {"benchmark": "learn", "device": torch.cuda.get_device_name() if gpu else "cpu",
           "torch": torch.__version__, "config": cfg}
    out["training_patches_per_s"] = rates = {}
    for m in MODELS:
        section(rates, m, training_rate, m, device, **cfg)
    if gpu:  # compilation takes ~20-40 s per network on an H100/H200
        out["training_patches_per_s_compiled"] = rates = {}
        for m in MODELS:
            section(rates, m, training_rate, m, device, **cfg, compile=True)
    side, batch = (1024, 8) if gpu else (128, 2)
    model = build_model("unet", base=cfg["base"], depth=cfg["depth"]).to(device).eval()
    model = model.to(memory_format=torch.channels_last if gpu else torch.contiguous_format)
    section(out, "inference_model_only_mvoxel_per_s", inference_rate, model, device, side, batch, gpu)
    volume = np.random.default_rng(1).random((side if gpu else 32, side, side), dtype=np.float32)
    out["segment_volume"] = list(volume.shape)
    section(out, "segment_mvoxel_per_s", segment_rate, model, device, volume, batch, gpu)
    section(out, "segment_pipeline_only_mvoxel_per_s", segment_rate,
            Pointwise(model.multiple).to(device).eval(), device, volume, batch, gpu)
    if gpu:
        compiled = torch.compile(model)
        section(out, "inference_model_only_compiled_mvoxel_per_s", inference_rate, compiled,
                device, side, batch, gpu)
        section(out, "segment_compiled_mvoxel_per_s", segment_rate, compiled, device, volume,
                batch, gpu)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Benchmark: training patches/s (data pipeline included) for each network, and segmentation
Mvoxel/s. On a GPU: 256² patches, batch 32, base 32, depth 4, bf16 (targets ≥ 2000 / 1500 / 1300
patches/s for U-Net / attention / attention-res, ≥ 400 Mvoxel/s inference of 1024³). On the CPU a
smaller configuration shows the relative costs. Prints one JSON object.
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

from stemtomo.losses import dice_ce
from stemtomo.models import MODELS, build_model
from stemtomo.segmentation import segment_volume
from stemtomo.training import augment, on_device


def training_rate(name: str, device, patch: int, batch: int, base: int, depth: int,
                  steps: int, amp: bool, compile: bool = False) -> float:
    rng = np.random.default_rng(0)
    images = on_device(rng.random((batch * 4, 1, patch, patch), dtype=np.float32), device)
    labels = on_device(rng.integers(0, 3, (batch * 4, patch, patch)).astype(np.uint8), device)
    model = build_model(name, base=base, depth=depth).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if compile else model

    def step() -> None:
        idx = torch.from_numpy(np.sort(rng.choice(len(images), batch, replace=False)))
        x, y = augment(images[idx.to(images.device)].to(device), labels[idx.to(labels.device)].to(device),
                       rng, 0.1)  # the training stage's own data pipeline
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = dice_ce(forward(x.to(memory_format=torch.channels_last)).float(), y)
        loss.backward()
        opt.step()

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


def main() -> None:
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    torch.set_num_threads(os.cpu_count() or 1)
    torch.backends.cudnn.benchmark = True
    cfg = dict(patch=256, batch=32, base=32, depth=4, steps=30, amp=True) if gpu else \
        dict(patch=64, batch=8, base=16, depth=3, steps=5, amp=False)
    out = {"benchmark": "learn", "device": torch.cuda.get_device_name() if gpu else "cpu",
           "config": cfg, "training_patches_per_s": {}}
    for name in MODELS:
        try:
            out["training_patches_per_s"][name] = round(training_rate(name, device, **cfg), 1)
        except Exception as exc:  # noqa: BLE001 - recorded, the other figures still come
            out["training_patches_per_s"][name] = f"failed: {exc}"
    if gpu:
        try:
            out["training_patches_per_s_compiled"] = {
                "unet": round(training_rate("unet", device, **cfg, compile=True), 1)}
        except Exception as exc:  # noqa: BLE001
            out["training_patches_per_s_compiled"] = f"failed: {exc}"
    side = 1024 if gpu else 128
    model = build_model("unet", base=cfg["base"], depth=cfg["depth"]).to(device).eval()
    model = model.to(memory_format=torch.channels_last if gpu else torch.contiguous_format)
    out["inference_model_only_mvoxel_per_s"] = round(
        inference_rate(model, device, side, 8 if gpu else 2, gpu), 1)
    if gpu:
        try:
            out["inference_model_only_compiled_mvoxel_per_s"] = round(
                inference_rate(torch.compile(model), device, side, 8, gpu), 1)
        except Exception as exc:  # noqa: BLE001
            out["inference_model_only_compiled_mvoxel_per_s"] = f"failed: {exc}"
    volume = np.random.default_rng(1).random((side if gpu else 32, side, side), dtype=np.float32)
    t0 = time.perf_counter()
    segment_volume(volume, model, 1, model.multiple, device, batch=8 if gpu else 4, amp=gpu,
                   probabilities=False)  # the rule's default output: labels
    out["segment_mvoxel_per_s"] = round(volume.size / 1e6 / (time.perf_counter() - t0), 2)
    out["segment_volume"] = list(volume.shape)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

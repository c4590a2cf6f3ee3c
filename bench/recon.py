"""Benchmark: MLEM throughput on every backend this machine has, and OSEM vs MLEM.

CPU (always): slices/s for joseph-cpu and astra-cpu with 1 and 2 worker threads.
GPU (when ASTRA and torch see one): ASTRA's own 2D EM_CUDA slice by slice (what TomoPy's ASTRA
wrapper does) against astra-gpu (3D, whole slab on torch tensors), 512×512 slices, 71 tilts,
50 iterations; target ≥ 5× the slice-by-slice figure; and a 2048 × 2048 × 1024 volume, which must
complete through memory chunks. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

import numpy as np
from common import section  # bench/common.py, beside this script
from scipy import ndimage

from stemtomo.core.device import gpu_available
from stemtomo.tomo.algorithms import mlem
from stemtomo.tomo.projectors import make_projector

ANGLES = np.arange(-70, 71, 2.0)


def phantom(n: int, slices: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vol = ndimage.gaussian_filter(rng.random((n // 2, slices, n)), 3).astype(np.float32)
    out = np.zeros((n, slices, n), np.float32)
    out[n // 4: n // 4 + n // 2] = np.clip(vol - vol.mean(), 0, None)  # a slab-shaped sample
    return out


def slices_per_s(backend: str, vol: np.ndarray, iterations: int, threads: int = 1) -> float:
    p = make_projector(backend, ANGLES, vol.shape, threads=threads)
    data = p.to_device(p.forward(vol))
    t0 = time.perf_counter()
    rec = mlem(p, data, iterations)
    p.to_host(rec.volume)
    return vol.shape[1] / (time.perf_counter() - t0)


def em_cuda_2d(vol: np.ndarray, iterations: int) -> float:
    """ASTRA's 2D EM_CUDA, one slice at a time (the TomoPy+ASTRA route)."""
    import astra

    nz, ny, nx = vol.shape
    vg = astra.create_vol_geom(nz, nx)
    pg = astra.create_proj_geom("parallel", 1.0, nx, -np.deg2rad(ANGLES))
    t0 = time.perf_counter()
    for j in range(ny):
        pid = astra.create_projector("cuda", pg, vg)
        sid, sino = astra.create_sino(np.ascontiguousarray(vol[:, j]), pid)
        rid = astra.data2d.create("-vol", vg, 1.0)
        cfg = astra.astra_dict("EM_CUDA")
        cfg.update(ReconstructionDataId=rid, ProjectionDataId=sid)
        alg = astra.algorithm.create(cfg)
        astra.algorithm.run(alg, iterations)
        astra.data2d.get(rid)
        for f, i in ((astra.algorithm.delete, alg), (astra.data2d.delete, sid),
                     (astra.data2d.delete, rid), (astra.projector.delete, pid)):
            f(i)
    return ny / (time.perf_counter() - t0)


def osem_vs_mlem(vol: np.ndarray) -> dict:
    p = make_projector("auto", ANGLES, vol.shape)
    data = p.to_device(p.forward(vol))
    t0 = time.perf_counter()
    target = mlem(p, data, 50).residuals[-1]
    t_mlem = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = mlem(p, data, 50, subsets=8)
    reached = next((i + 1 for i, r in enumerate(rec.residuals) if r <= target), None)
    t_osem = (time.perf_counter() - t0) * (reached or 50) / 50
    return {"backend": p.name, "mlem50_residual": target, "osem8_iterations_to_match": reached,
            "mlem50_s": round(t_mlem, 2), "osem_s": round(t_osem, 2),
            "time_saved": round(1 - t_osem / t_mlem, 3)}


class PeakGPUMemory:
    """Peak device memory in use (all allocators: torch's and ASTRA's own), polled every 20 ms."""

    def __enter__(self):
        import threading

        import torch

        self.peak, self._stop = 0, threading.Event()

        def poll() -> None:
            while not self._stop.wait(0.02):
                free, total = torch.cuda.mem_get_info()
                self.peak = max(self.peak, total - free)

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def large_volume(card_gb: float = 80.0) -> dict:
    """2048 × 2048 detector, 1024 px thick: must complete on one 80 GB GPU by chunking rows. On a
    larger card the memory fraction is scaled so that chunks are sized as on an 80 GB one."""
    import torch
    from common import settings

    from stemtomo.recon.reconstruct import reconstruct
    from stemtomo.recon.settings import ReconstructSettings

    rng = np.random.default_rng(0)
    stack = rng.random((len(ANGLES), 2048, 2048), dtype=np.float32)
    free = torch.cuda.mem_get_info()[0]
    fraction = min(0.8, 0.8 * card_gb * 1e9 / free)
    recon = settings(ReconstructSettings, iterations=3, height=1024, backend="astra-gpu",
                     max_memory_fraction=fraction)
    base = torch.cuda.mem_get_info()[1] - free
    with PeakGPUMemory() as peak:
        t0 = time.perf_counter()
        volume, rec = reconstruct(stack, ANGLES, recon)
        seconds = time.perf_counter() - t0
    return {"shape_zyx": list(volume.shape), "emulated_card_gb": card_gb,
            "max_memory_fraction": round(fraction, 3), "chunks": rec["chunks"],
            "rows_per_chunk": rec["rows_per_chunk"], "iterations": 3,
            "peak_gpu_gb": round((peak.peak - base) / 1e9, 1), "seconds": round(seconds, 1),
            "finite": bool(np.isfinite(volume).all())}


def kernel_ms(n: int = 512, repeats: int = 5) -> dict:
    """Where an astra-gpu MLEM iteration goes: ASTRA's FP and BP alone vs the whole iteration."""
    import torch

    p = make_projector("astra-gpu", ANGLES, (n, n, n))
    vol = torch.rand((n, n, n), device="cuda")
    proj = p.forward(vol)

    def ms(fn) -> float:
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
        return round((time.perf_counter() - t0) / repeats * 1e3, 2)

    data = proj.clone()
    return {"volume": [n, n, n], "fp_ms": ms(lambda: p.forward(vol)), "bp_ms": ms(lambda: p.back(proj)),
            "mlem_1_iteration_with_sensitivity_ms": ms(lambda: mlem(p, data, 1))}


def cpu_rates() -> dict:
    vol = phantom(256, 16)
    cpu = {"volume": list(vol.shape), "iterations": 10,
           "joseph-cpu": round(slices_per_s("joseph-cpu", vol, 10), 2)}
    for threads in (1, 2):
        cpu[f"astra-cpu_{threads}_threads"] = round(slices_per_s("astra-cpu", vol, 10, threads), 2)
    return cpu


def gpu_rates(slices: int = 128) -> dict:
    vol = phantom(512, slices)
    g = {"volume": list(vol.shape), "iterations": 50,
         "em_cuda_2d_slices_per_s": round(em_cuda_2d(vol, 50), 2),
         "astra_gpu_slices_per_s": round(slices_per_s("astra-gpu", vol, 50), 2)}
    g["speedup"] = round(g["astra_gpu_slices_per_s"] / g["em_cuda_2d_slices_per_s"], 2)
    return g


def main() -> None:
    out: dict = {"benchmark": "recon", "cpus": os.cpu_count(), "tilts": len(ANGLES)}
    section(out, "cpu_slices_per_s", cpu_rates)
    section(out, "osem_vs_mlem", osem_vs_mlem, phantom(128, 16))
    if gpu_available():
        import torch

        out["gpu_name"] = torch.cuda.get_device_name()
        section(out, "gpu", gpu_rates)
        section(out, "gpu_512_slices", gpu_rates, 512)
        section(out, "kernels", kernel_ms)
        section(out, "gpu_osem_vs_mlem_512", osem_vs_mlem, phantom(512, 64))
        section(out, "large", large_volume)
    else:
        out["gpu"] = "no GPU visible to ASTRA and torch"
    print(json.dumps(out))


if __name__ == "__main__":
    main()

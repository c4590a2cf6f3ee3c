"""Iterative reconstruction over the projector interface (stemtomo.projectors)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .errors import InputError
from .projectors import Projector, backend_class, make_projector

EPS = 1e-6


@dataclass
class Reconstruction:
    volume: np.ndarray
    residuals: list[float] = field(default_factory=list)  # ‖Ax − y‖ / ‖y‖ per iteration


def interleaved_subsets(n_tilts: int, subsets: int) -> list[np.ndarray]:
    """Tilt indices split into subsets interleaved by angle (0, k, 2k, …), so each subset spans
    the whole tilt range (Hudson & Larkin 1994)."""
    subsets = max(1, min(subsets, n_tilts))
    return [np.arange(s, n_tilts, subsets) for s in range(subsets)]


def subset_projectors(projector: Projector, subsets: int) -> list[tuple[np.ndarray, Projector]]:
    """(tilt indices, projector restricted to them) per interleaved subset; the projector itself
    when there is one subset."""
    return [(tilts, projector if subsets == 1 else projector.subset(tilts))
            for tilts in interleaved_subsets(len(projector.angles), subsets)]


def sirt(projector: Projector, data: np.ndarray, iterations: int, x0: np.ndarray | None = None,
         nonnegative: bool = True, subsets: int = 1, progress: bool = False) -> Reconstruction:
    """SIRT (Gilbert 1972; row/column-sum normalised Landweber): x ← x + C·Aᵀ·R·(y − A·x).

    With subsets > 1 each iteration sweeps the ordered subsets (OS-SIRT), one update per subset.
    Residuals: ‖Ax − y‖/‖y‖ of the estimate after each iteration with one subset (the next
    iteration's projection serves, one more at the end); with subsets, the cheaper misfit of each
    subset as it is visited (x changes in between), fit only to compare runs of the same procedure
    (alignment uses it so).
    """
    y = np.asarray(data, dtype=np.float32)
    parts = []
    for tilts, p in subset_projectors(projector, subsets):
        row = p.forward(np.ones(p.volume_shape, np.float32))
        col = p.back(np.ones(p.projection_shape, np.float32))
        parts.append((tilts, p, np.where(row > EPS, 1.0 / np.maximum(row, EPS), 0.0).astype(np.float32),
                      np.where(col > EPS, 1.0 / np.maximum(col, EPS), 0.0).astype(np.float32)))
    x = np.zeros(projector.volume_shape, np.float32) if x0 is None else x0.astype(np.float32)
    norm = float(np.linalg.norm(y)) or 1.0
    residuals = []
    for it in tqdm(range(iterations), desc="SIRT", unit="it", disable=not progress):
        sq = 0.0
        for tilts, p, r_inv, c_inv in parts:
            diff = y[tilts] - p.forward(x)
            sq += float(np.sum(diff.astype(np.float64) ** 2))
            x += c_inv * p.back(r_inv * diff)
            if nonnegative:
                np.maximum(x, 0, out=x)
        if subsets > 1 or it > 0:  # with one subset: the previous iteration's result, projected
            residuals.append(np.sqrt(sq) / norm)
    if subsets == 1 and iterations:
        residuals.append(float(np.linalg.norm(projector.forward(x) - y)) / norm)
    return Reconstruction(x, residuals)


def cgls(projector: Projector, data: np.ndarray, iterations: int,
         progress: bool = False) -> Reconstruction:
    """Conjugate gradients on the normal equations AᵀA x = Aᵀy (Hestenes & Stiefel 1952; Björck
    1996): least squares without constraints, converging far faster than SIRT."""
    back = projector.back
    y = np.asarray(data, dtype=np.float32)
    x = np.zeros(projector.volume_shape, np.float32)
    r = y.copy()
    s = back(r)
    p = s.copy()
    gamma = float(np.vdot(s, s))
    norm = float(np.linalg.norm(y)) or 1.0
    residuals = []
    for _ in tqdm(range(iterations), desc="CGLS", unit="it", disable=not progress):
        q = projector.forward(p)
        qq = float(np.vdot(q, q))
        if qq == 0 or gamma == 0:
            break
        alpha = gamma / qq
        x += alpha * p
        r -= alpha * q
        residuals.append(float(np.linalg.norm(r)) / norm)
        s = back(r)
        gamma_new = float(np.vdot(s, s))
        p = s + (gamma_new / gamma) * p
        gamma = gamma_new
    return Reconstruction(x, residuals)


class _Ops:
    """The few array operations the EM loop needs, for NumPy arrays or torch tensors, so that one
    loop serves CPU projectors and the GPU projector without leaving the GPU."""

    def __init__(self, like) -> None:
        self.torch = type(like).__module__.split(".")[0] == "torch"
        self.like = like

    def ones(self, shape):
        if self.torch:
            import torch

            return torch.ones(shape, dtype=torch.float32, device=self.like.device)
        return np.ones(shape, np.float32)

    def array(self, a):
        if self.torch and not type(a).__module__.startswith("torch"):
            import torch

            return torch.as_tensor(np.asarray(a, np.float32), device=self.like.device)
        return a if self.torch else np.asarray(a, np.float32)

    def floor(self, a, eps: float):
        return a.clamp(min=eps) if self.torch else np.maximum(a, eps)

    def reciprocal(self, a):
        return self.floor(a, EPS).reciprocal() * (a > EPS) if self.torch else \
            np.where(a > EPS, 1.0 / np.maximum(a, EPS), 0.0).astype(np.float32)

    def sumsq(self, a) -> float:
        return float((a.double() ** 2).sum()) if self.torch else float(np.sum(a.astype(np.float64) ** 2))

    def finite(self, a) -> bool:
        return bool(a.isfinite().all()) if self.torch else bool(np.all(np.isfinite(a)))


def mlem(projector: Projector, data, iterations: int, subsets: int = 1, x0=None, mask=None,
         progress: bool = False) -> Reconstruction:
    """MLEM (Shepp & Vardi 1982) and, with subsets > 1, OSEM (Hudson & Larkin 1994) in one loop:
    x ← x · Aₛᵀ(yₛ / Aₛx) / Aₛᵀ1 for each subset s of interleaved tilts.

    Needs non-negative data and a non-negative start with positive voxels (a zero voxel never
    changes under a multiplicative update, so MLEM's own result continues it). `mask`
    (broadcastable, 0/1) confines the volume, e.g. to a cylinder.
    Data may be a NumPy array or a torch CUDA tensor (with the astra-gpu projector): the loop then
    runs on the GPU without host round-trips. Residuals are ‖Ax − y‖/‖y‖ of the estimate after
    each iteration: MLEM takes it from the next iteration's projection (one more at the end);
    OSEM projects the whole series once more per iteration for it (x changes between subsets, so
    the subsets' own misfits belong to no single estimate).
    """
    ops = _Ops(data)
    y = ops.array(data)
    if not ops.finite(y):
        raise ValueError("MLEM data contain NaN or Inf")
    if float(y.min()) < 0:
        raise ValueError("MLEM needs non-negative data; subtract the background and clip first")
    if x0 is None:
        x = ops.ones(projector.volume_shape)
    else:
        x = ops.array(np.array(x0, dtype=np.float32))
        if float(x.min()) < 0 or not float(x.max()) > 0:
            raise ValueError("EM needs a non-negative start with positive voxels (a zero voxel "
                             "never changes: give those the object may occupy a positive value)")
    if mask is not None:
        mask = ops.array(mask)
        x *= mask
    parts = []
    for tilts, p in subset_projectors(projector, subsets):
        sens = p.back(ops.ones(p.projection_shape))
        parts.append((y[tilts] if subsets > 1 else y, p, ops.reciprocal(sens)))
    norm = np.sqrt(ops.sumsq(y)) or 1.0
    residuals = []

    def misfit(estimate, target) -> float:
        return float(np.sqrt(ops.sumsq(estimate - target)) / norm)

    for it in tqdm(range(iterations), desc="OSEM" if subsets > 1 else "MLEM", unit="it",
                   disable=not progress):
        for ys, p, inv_sens in parts:
            estimate = p.forward(x)
            if subsets == 1 and it > 0:  # the previous iteration's result, projected
                residuals.append(misfit(estimate, ys))
            x *= p.back(ys / ops.floor(estimate, EPS)) * inv_sens
            if mask is not None:
                x *= mask
        if subsets > 1:
            residuals.append(misfit(projector.forward(x), y))
    if subsets == 1 and iterations:
        residuals.append(misfit(projector.forward(x), y))
    return Reconstruction(x, residuals)


def ramp_filter(projections: np.ndarray, window: str = "hann") -> np.ndarray:
    """Filter projections (…, u) with |k| (cycles/px), apodised, zero-padded to avoid wrap-around."""
    n = projections.shape[-1]
    pad = int(2 ** np.ceil(np.log2(2 * n)))
    k = np.abs(np.fft.rfftfreq(pad))
    apod = {"ram-lak": np.ones_like(k), "hann": 0.5 + 0.5 * np.cos(2 * np.pi * k),
            "shepp-logan": np.sinc(k)}[window]
    spec = np.fft.rfft(projections, n=pad, axis=-1) * (k * apod)
    return np.fft.irfft(spec, n=pad, axis=-1)[..., :n].astype(np.float32)


def fbp(projector: Projector, data: np.ndarray, window: str = "hann") -> Reconstruction:
    """Filtered backprojection (parallel beam): Σᵢ Δθᵢ · Aᵀ(ramp ∗ pᵢ), with Δθᵢ the angular
    interval each tilt represents, so limited and uneven tilt ranges are weighted correctly."""
    y = np.asarray(data, dtype=np.float32)
    th = np.deg2rad(projector.angles)
    order = np.argsort(th)
    widths = np.empty_like(th)
    # half the gap to each neighbour, the gap at the ends; a lone tilt stands for the half-turn
    widths[order] = np.gradient(th[order]) if len(th) > 1 else np.pi
    filtered = ramp_filter(y, window) * widths[:, None, None].astype(np.float32)
    x = projector.back(filtered)
    resid = np.linalg.norm(projector.forward(x) - y) / (np.linalg.norm(y) or 1.0)
    return Reconstruction(x, [float(resid)])


def cylinder_mask(nz: int, nx: int) -> np.ndarray:
    """(nz, 1, nx) mask of the cylinder about the tilt axis inscribed in the detector width: only
    voxels seen at every tilt."""
    z = np.arange(nz) - (nz - 1) / 2
    x = np.arange(nx) - (nx - 1) / 2
    return ((z[:, None] ** 2 + x[None, :] ** 2) <= (nx / 2) ** 2).astype(np.float32)[:, None, :]


def reconstruct(stack: np.ndarray, angles: np.ndarray, settings: dict,
                rows: tuple[int, int] | None = None, threads: int = 1, source: str = "tilt series",
                progress: bool = False) -> tuple[np.ndarray, dict]:
    """Reconstruct rows [start, stop) of an aligned (tilt, y, x) series with the `reconstruct`
    config section. Slices along the tilt axis are independent, so slabs of rows give exactly the
    rows of the full reconstruction. Returns the (nz, rows, nx) volume and a record of the run."""
    if stack.ndim != 3:
        raise InputError(source, f"expected a (tilt, y, x) stack, got shape {stack.shape}")
    if len(angles) != stack.shape[0]:
        raise InputError(source, f"{stack.shape[0]} images but {len(angles)} angles",
                         "rerun the align stage so that the series and its .tlt agree")
    y0, y1 = rows or (0, stack.shape[1])
    data = np.ascontiguousarray(stack[:, y0:y1, :], dtype=np.float32)
    if not np.all(np.isfinite(data)):
        raise InputError(source, "the series contains NaN or Inf", "check the import and align logs")
    nx = data.shape[2]
    nz = settings["height"] or nx
    chunk = rows_per_chunk(settings["backend"], len(angles), nz, nx, settings["max_memory_fraction"])
    # EM needs non-negative data and clips them (_reconstruct_rows); SIRT and FBP keep negatives
    clipped = float(np.mean(data < 0)) if settings["algorithm"] in ("mlem", "osem") else 0.0
    t0 = time.perf_counter()
    parts = [_reconstruct_rows(data[:, a:b], angles, nz, settings, threads, progress)
             for a, b in [(a, min(a + chunk, data.shape[1])) for a in range(0, data.shape[1], chunk)]]
    seconds = time.perf_counter() - t0
    volume = np.concatenate([p[0] for p in parts], axis=1)
    records = [{"data_norm": p[1], "residuals": p[2]} for p in parts]
    return volume, {
        "algorithm": settings["algorithm"], "backend": parts[0][3], "rows": [y0, y1],
        "shape_zyx": list(volume.shape),
        "iterations": settings["iterations"] if settings["algorithm"] != "fbp" else 1,
        "subsets": settings["subsets"] if settings["algorithm"] == "osem" else 1,
        "chunks": len(parts), "rows_per_chunk": chunk,
        "seconds": round(seconds, 3), "slices_per_s": round((y1 - y0) / max(seconds, 1e-9), 2),
        "data_norm": float(np.sqrt(sum(r["data_norm"] ** 2 for r in records))),
        "residuals": combine_residuals(records), "negative_fraction_clipped": clipped,
    }


def rows_per_chunk(backend: str, n_tilts: int, nz: int, nx: int, fraction: float) -> int:
    """Rows (slices along the tilt axis) that fit in `fraction` of the backend's free memory.

    Counted per row in float32: five volume-sized arrays (estimate, sensitivity, back-projection,
    mask or temporaries, and the copy ASTRA's 3D projector makes) and four projection-sized ones
    (data, estimate, ratio, its contiguous copy) — conservative, so chunks never run out."""
    if backend.startswith("tomopy"):
        backend = "astra-gpu" if backend == "tomopy-gpu" else "joseph-cpu"  # same memory
    per_row = 4 * (5 * nz * nx + 4 * n_tilts * nx)
    return max(1, int(fraction * backend_class(backend).free_memory() // per_row))


def _reconstruct_rows(data: np.ndarray, angles: np.ndarray, nz: int, settings: dict,
                      threads: int, progress: bool) -> tuple[np.ndarray, float, list[float], str]:
    """One chunk of rows: (volume, ‖data‖, residuals, backend name)."""
    nx = data.shape[2]
    algorithm = settings["algorithm"]
    mask = cylinder_mask(nz, nx) if settings["mask"] == "cylinder" else None
    data = data.copy()
    if settings["backend"] in ("tomopy", "tomopy-gpu"):
        from .tomopy_backend import reconstruct_tomopy

        if algorithm in ("mlem", "osem"):
            np.maximum(data, 0, out=data)
        volume = reconstruct_tomopy(data, angles, nz, settings, settings["backend"] == "tomopy-gpu")
        if mask is not None:
            volume *= mask
        # TomoPy reports no per-iteration fidelity: record the final one with our projector.
        check = make_projector("joseph-cpu", angles, volume.shape)
        norm = float(np.linalg.norm(data.astype(np.float64)))
        final = float(np.linalg.norm(check.forward(volume) - data)) / (norm or 1.0)
        return volume, norm, [final], settings["backend"]
    projector = make_projector(settings["backend"], angles, (nz, data.shape[1], nx), threads=threads)
    if algorithm in ("mlem", "osem"):
        np.maximum(data, 0, out=data)  # Poisson data are non-negative; noise below vacuum is not
        # The EM loop runs where the projector computes (a GPU keeps everything on the device).
        rec = mlem(projector, projector.to_device(data), settings["iterations"],
                   subsets=settings["subsets"] if algorithm == "osem" else 1, mask=mask,
                   progress=progress)
        rec.volume = projector.to_host(rec.volume)
    elif algorithm == "sirt":
        rec = sirt(projector, data, settings["iterations"], progress=progress)
    elif algorithm == "fbp":
        rec = fbp(projector, data, settings["fbp_window"])
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    if mask is not None and algorithm in ("sirt", "fbp"):
        rec.volume *= mask
    return rec.volume, float(np.linalg.norm(data.astype(np.float64))), rec.residuals, projector.name


def combine_residuals(records: list[dict]) -> list[float]:
    """Whole-volume relative residual per iteration from slab records (exact: squares add)."""
    total = np.sqrt(sum(r["data_norm"] ** 2 for r in records)) or 1.0
    per_iter = np.array([[res * r["data_norm"] for res in r["residuals"]] for r in records])
    return (np.sqrt((per_iter**2).sum(axis=0)) / total).tolist()

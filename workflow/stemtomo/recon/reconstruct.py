"""The reconstruct stage: rows of an aligned series → volume, in memory-sized chunks, with the
projector loop (stemtomo.tomo) or TomoPy."""

from __future__ import annotations

import time

import numpy as np

from ..core.errors import InputError
from ..tomo.algorithms import Reconstruction, cylinder_mask, fbp, mlem, sirt
from ..tomo.projectors import Projector, backend_class, make_projector
from .settings import ReconstructSettings


def reconstruct(stack: np.ndarray, angles: np.ndarray, settings: ReconstructSettings,
                rows: tuple[int, int] | None = None, threads: int = 1, source: str = "tilt series",
                progress: bool = False) -> tuple[np.ndarray, dict]:
    """Reconstruct rows [start, stop) of an aligned (tilt, y, x) series. Slices along the tilt
    axis are independent, so slabs of rows give exactly the rows of the full reconstruction.
    Returns the (nz, rows, nx) volume and a record of the run."""
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
    nz = settings.height or nx
    chunk = rows_per_chunk(settings.backend, len(angles), nz, nx, settings.max_memory_fraction)
    # EM needs non-negative data and clips them (_reconstruct_rows); SIRT and FBP keep negatives
    clipped = float(np.mean(data < 0)) if settings.method.em else 0.0
    t0 = time.perf_counter()
    parts = [_reconstruct_rows(data[:, a:b], angles, nz, settings, threads, progress)
             for a, b in [(a, min(a + chunk, data.shape[1])) for a in range(0, data.shape[1], chunk)]]
    seconds = time.perf_counter() - t0
    volume = np.concatenate([p[0] for p in parts], axis=1)
    check_finite(volume, settings, parts[0][3], y0, source)
    records = [{"data_norm": p[1], "residuals": p[2]} for p in parts]
    return volume, {
        "algorithm": settings.algorithm, "backend": parts[0][3], "rows": [y0, y1],
        "shape_zyx": list(volume.shape), "iterations": settings.effective_iterations,
        "subsets": settings.effective_subsets, "chunks": len(parts), "rows_per_chunk": chunk,
        "seconds": round(seconds, 3), "slices_per_s": round((y1 - y0) / max(seconds, 1e-9), 2),
        "data_norm": float(np.sqrt(sum(r["data_norm"] ** 2 for r in records))),
        "residuals": combine_residuals(records), "negative_fraction_clipped": clipped,
    }


def check_finite(volume: np.ndarray, settings: ReconstructSettings, backend: str, first_row: int,
                 source: str) -> None:
    """No backend may hand on a volume with NaN or Inf: stop with the rows it happened in."""
    bad = ~np.isfinite(volume)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=(0, 2))) + first_row
        raise InputError(source, f"the {settings.algorithm} reconstruction on {backend} has "
                         f"{int(bad.sum())} NaN/Inf voxels of {volume.size} (rows {rows[0]}–"
                         f"{rows[-1]}); no volume was written",
                         "set reconstruct.backend: joseph-cpu (or astra-cpu / astra-gpu), and "
                         "report the series and config if this backend should have handled it")


def rows_per_chunk(backend: str, n_tilts: int, nz: int, nx: int, fraction: float) -> int:
    """Rows (slices along the tilt axis) that fit in `fraction` of the backend's free memory.

    Counted per row in float32: five volume-sized arrays (estimate, sensitivity, back-projection,
    mask or temporaries, and the copy ASTRA's 3D projector makes) and four projection-sized ones
    (data, estimate, ratio, its contiguous copy) — conservative, so chunks never run out."""
    if backend.startswith("tomopy"):
        backend = "astra-gpu" if backend == "tomopy-gpu" else "joseph-cpu"  # same memory
    per_row = 4 * (5 * nz * nx + 4 * n_tilts * nx)
    return max(1, int(fraction * backend_class(backend).free_memory() // per_row))


def _reconstruct_rows(data: np.ndarray, angles: np.ndarray, nz: int, settings: ReconstructSettings,
                      threads: int, progress: bool) -> tuple[np.ndarray, float, list[float], str]:
    """One chunk of rows: (volume, ‖data‖, residuals, backend name)."""
    nx = data.shape[2]
    method = settings.method
    mask = cylinder_mask(nz, nx) if settings.mask == "cylinder" else None
    data = data.copy()
    if method.em:
        np.maximum(data, 0, out=data)  # Poisson data are non-negative; noise below vacuum is not
    norm = float(np.linalg.norm(data.astype(np.float64)))
    if settings.tomopy:
        from .tomopy_backend import reconstruct_tomopy

        volume = reconstruct_tomopy(data, angles, nz, settings, settings.backend == "tomopy-gpu",
                                    threads, progress)
        if mask is not None:
            volume *= mask
        # TomoPy reports no per-iteration fidelity: record the final one with our projector.
        check = make_projector("joseph-cpu", angles, volume.shape)
        final = float(np.linalg.norm(check.forward(volume) - data)) / (norm or 1.0)
        return volume, norm, [final], settings.backend
    projector = make_projector(settings.backend, angles, (nz, data.shape[1], nx), threads=threads)
    rec = _run(projector, data, settings, mask, progress)
    if mask is not None and not method.masked_inside:
        rec.volume *= mask
    return rec.volume, norm, rec.residuals, projector.name


def _run(projector: Projector, data: np.ndarray, settings: ReconstructSettings,
         mask: np.ndarray | None, progress: bool) -> Reconstruction:
    """The configured algorithm with the projector loop."""
    if settings.method.em:
        # The EM loop runs where the projector computes (a GPU keeps everything on the device).
        rec = mlem(projector, projector.to_device(data), settings.iterations,
                   subsets=settings.effective_subsets, mask=mask, progress=progress)
        rec.volume = projector.to_host(rec.volume)
        return rec
    if settings.method.iterative:
        return sirt(projector, data, settings.iterations, progress=progress)
    return fbp(projector, data, settings.fbp_window)


def combine_residuals(records: list[dict]) -> list[float]:
    """Whole-volume relative residual per iteration from slab records (exact: squares add)."""
    total = np.sqrt(sum(r["data_norm"] ** 2 for r in records)) or 1.0
    per_iter = np.array([[res * r["data_norm"] for res in r["residuals"]] for r in records])
    return (np.sqrt((per_iter**2).sum(axis=0)) / total).tolist()

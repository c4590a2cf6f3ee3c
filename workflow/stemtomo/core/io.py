"""Writing outputs safely (atomically, with pixel size metadata) and the small file formats."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

from .errors import OutputError

PARTIAL = ".partial"
# errno values that mean "this folder cannot take the file", whoever runs the job
_UNWRITABLE = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
               errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
               errno.EDQUOT: "disk quota exceeded"}


def partial_path(path: str | os.PathLike) -> Path:
    """Where `path` is written before it is moved into place: a hidden name beside it, the same
    for every run, so the rule's next run replaces (or removes) what a killed one left."""
    path = Path(path)
    return path.with_name(f".{path.name}{PARTIAL}{path.suffix}")


def unwritable(folder: str | os.PathLike, exc: OSError) -> OutputError | None:
    """The clear error for an OSError that says `folder` cannot take files, else None."""
    reason = _UNWRITABLE.get(exc.errno or -1)
    if reason is None:
        return None
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # name the folder that refused, not one never made
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on that disk (or raise the quota), or run in a working directory " \
              "on another disk (snakemake --directory DIR)"
    else:
        fix = f"make it writable for this user (e.g. chmod -R u+w {folder}, or ask its owner), " \
              "or run in a working directory you can write to (snakemake --directory DIR)"
    return OutputError(folder, f"cannot write results here ({reason})", fix)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the partial path of `path`; move it into place only if the block succeeds.

    A failed stage therefore never leaves a half-written file under the final name, and a killed
    one leaves only the partial file, which the next write of `path` replaces and the rule runner
    removes when the rule starts again (core.runner). A folder that cannot take the file (read-only,
    full) raises OutputError naming it.
    """
    path = Path(path)
    tmp = partial_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)  # a killed run's leftover
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        error = unwritable(path.parent, exc)
        if error is None:
            raise
        raise error from exc
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_tiff(path: str | os.PathLike, data: np.ndarray, pixel_size_nm: float | None,
               axes: str = "ZYX") -> None:
    """ImageJ/Fiji-readable TIFF stack with the pixel size in nm (resolution tags + unit)."""
    import tifffile

    kwargs: dict = {"imagej": True, "metadata": {"axes": axes}}
    if pixel_size_nm:
        kwargs["resolution"] = (1.0 / pixel_size_nm, 1.0 / pixel_size_nm)
        kwargs["metadata"].update(unit="nm", spacing=pixel_size_nm)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, **kwargs)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """One array as .npy (slab results between jobs)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.save would append .npy to the name
            np.save(fh, array)


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Named arrays as a compressed .npz (patch sets)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def copy_file(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copy a file atomically (a kill mid-copy leaves the old copy, never half of the new one)."""
    import shutil

    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_csv(path: str | os.PathLike, rows: list[dict], fields: list[str] | None = None) -> None:
    """Rows of dicts as CSV (header from the first row, or `fields` when there may be no rows)."""
    import csv

    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields or list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def write_angles(path: str | os.PathLike, angles: Sequence[float]) -> None:
    """One angle in degrees per line (IMOD .tlt/.rawtlt layout)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{a:.4f}\n" for a in angles))


def write_xf(path: str | os.PathLike, axis_angle_deg: float, axis_offset_px: float,
             shifts_yx: np.ndarray) -> None:
    """IMOD .xf: per raw view `A11 A12 A21 A22 DX DY`, mapping raw to aligned positions
    (x, y relative to the image centre, y = row index): p = A·r + D."""
    from .geometry import rotation_yx

    r_yx = rotation_yx(-axis_angle_deg)  # aligned p = R(φ)⁻¹(r − s) − (0, δ) in (y, x)
    a = np.array([[r_yx[1, 1], r_yx[1, 0]], [r_yx[0, 1], r_yx[0, 0]]])  # reorder to (x, y)
    lines = []
    for sy, sx in np.asarray(shifts_yx, dtype=float):
        d = -a @ np.array([sx, sy]) - np.array([axis_offset_px, 0.0])
        lines.append(f"{a[0, 0]:12.7f}{a[0, 1]:12.7f}{a[1, 0]:12.7f}{a[1, 1]:12.7f}"
                     f"{d[0]:12.3f}{d[1]:12.3f}\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))


def read_xf(path: str | os.PathLike) -> np.ndarray:
    """(n, 2, 3) affine matrices [A | D] from an IMOD .xf file."""
    rows = np.loadtxt(path, ndmin=2)
    return np.stack([np.array([[r[0], r[1], r[4]], [r[2], r[3], r[5]]]) for r in rows])


def write_mrc(path: str | os.PathLike, volume: np.ndarray, voxel_size_nm: float | None) -> None:
    """MRC2014 volume (z, y, x) float32 with the voxel size in Å, for IMOD and tomviz."""
    import mrcfile

    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as m:
            m.set_data(np.asarray(volume, dtype=np.float32))
            if voxel_size_nm:
                m.voxel_size = voxel_size_nm * 10.0

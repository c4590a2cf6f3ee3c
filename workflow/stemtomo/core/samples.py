"""What a sample starts from, and what can be known about it before any job runs: the start point
(`simulate`, `tiltseries`, `volume` or `slices`), array shapes read from file headers, and the
(z, y, x) shape its reconstruction will have."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from .errors import InputError

START_POINTS = ("simulate", "tiltseries", "volume", "slices")


def start_point(sample: dict) -> str:
    """The one start key of a validated sample."""
    return next(k for k in START_POINTS if k in sample)


def expand(pattern: str, workdir: str | Path = ".") -> list[Path]:
    """Files matching a glob pattern (relative to `workdir`; ** recurses), sorted by name."""
    full = pattern if Path(pattern).is_absolute() else str(Path(workdir) / pattern)
    return sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())


def stored_shape(path: str | Path) -> tuple[int, ...]:
    """The array shape a TIFF, MRC or NPY file holds, from its header (no data read)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return tuple(int(n) for n in tif.series[0].shape)
        if suffix == ".npy":
            return tuple(int(n) for n in np.load(path, mmap_mode="r", allow_pickle=False).shape)
        import mrcfile

        with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
            h = mrc.header
            return (int(h.nz), int(h.ny), int(h.nx))
    except Exception as exc:  # noqa: BLE001 - one clear message for every reader failure
        raise InputError(path, f"cannot read the file's header ({type(exc).__name__}: {exc})",
                         "check that the file is complete and of its suffix's type") from exc


def axes_order(axes: str) -> tuple[int, int, int]:
    """The transpose that brings an array stored with `axes` (e.g. "yzx") to (z, y, x)."""
    return tuple(axes.index(a) for a in "zyx")  # type: ignore[return-value]


def volume_shape(config: dict, sample: str, workdir: str | Path = ".") -> tuple[int, int, int] | None:
    """The (z, y, x) shape of the sample's volume.tif where it follows from the config and file
    headers (a `volume:` start or a synthetic sample); None where it is known only later."""
    from .settings import merged_settings

    s = config["samples"][sample]
    kind = start_point(s)
    if kind == "volume":
        shape = stored_shape(Path(workdir) / s["volume"])
        if len(shape) != 3:
            raise InputError(f"config samples.{sample}.volume", f"{s['volume']} holds a "
                             f"{len(shape)}D array {shape}, not a 3D volume",
                             "give the reconstruction as one 3D file")
        order = axes_order(s.get("volume_axes", "zyx"))
        return tuple(shape[i] for i in order)  # type: ignore[return-value]
    if kind == "simulate":
        size = s["simulate"]["size"]
        height = merged_settings(config, sample, "reconstruct").get("height") or size
        return (height, size, size)
    return None

"""What a sample starts from, and what can be known about it before any job runs: the start point
(`simulate`, `tiltseries`, `volume` or `slices`) and the (z, y, x) shape its volume will have."""

from __future__ import annotations

import glob
from pathlib import Path

from .errors import InputError

START_POINTS = ("simulate", "tiltseries", "volume", "slices")


def start_point(sample: dict) -> str:
    """The one start key of a validated sample."""
    return next(k for k in START_POINTS if k in sample)


def expand(pattern: str, workdir: str | Path = ".") -> list[Path]:
    """Files matching a glob pattern (relative to `workdir`; ** recurses), sorted by name."""
    full = pattern if Path(pattern).is_absolute() else str(Path(workdir) / pattern)
    return sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())


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
        from .readers import read_shape

        shape = read_shape(Path(workdir) / s["volume"])
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

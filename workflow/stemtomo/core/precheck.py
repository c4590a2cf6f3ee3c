"""What the checks before any job need: the (z, y, x) shape a sample's reconstruction will have
and why (its settings), a label file's values counted once per version of the file (cached under
.snakemake/stemtomo/ by size and modification time), and whether the results folder can take
files. The checks themselves are in stemtomo.prep.inputs (called from common.smk), so a wrong
label file stops `snakemake` at once instead of failing the `patches` job after the
reconstruction.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, InputError, OutputError

CACHE = Path(".snakemake") / "stemtomo" / "labels-checked.json"


@dataclass(frozen=True)
class VolumeShape:
    """The (z, y, x) shape a reconstruction will have, and for each axis the settings behind it."""
    shape: tuple[int, int, int]
    why: tuple[str, str, str]


def reconstruction_shape(image_yx: tuple[int, int], imp: dict, rec: dict,
                         key: Callable[[str, str], str]) -> VolumeShape:
    """(z, y, x) of the volume reconstructed from images of `image_yx` px with the import
    settings `imp` (crop, then binning: remainders dropped) and reconstruct settings `rec`
    (height; null = the width). Alignment resamples in place and keeps the size. `key(stage, name)`
    gives the dotted config key of a setting, for the explanation."""
    crop, b = imp.get("crop") or {}, imp["binning"]
    sizes, why = [], []
    for axis, n, what in (("y", image_yx[0], "rows"), ("x", image_yx[1], "columns")):
        text = f"the images' {n} {what}"
        if axis in crop:
            lo, hi = crop[axis]
            n = max(0, min(hi, n) - lo)
            text += f", cropped to [{lo}, {hi}) by {key('import', 'crop')}.{axis}"
        if b > 1:
            text += f", binned by {key('import', 'binning')}: {b}"
        sizes.append(n // b)
        why.append(text)
    ny, nx = sizes
    if rec.get("height"):
        nz, zwhy = rec["height"], f"{key('reconstruct', 'height')}: {rec['height']}"
    else:
        nz, zwhy = nx, f"{key('reconstruct', 'height')}: null (the width x)"
    return VolumeShape((nz, ny, nx), (zwhy, why[0], why[1]))


def shape_mismatch(path: Path, shape: tuple[int, ...], expected: VolumeShape) -> tuple[str, str]:
    axes = [f"{a} {have} ≠ {want} ({why})"
            for a, have, want, why in zip("zyx", shape, expected.shape, expected.why, strict=True)
            if have != want]
    problem = (f"{path}: labels have shape (z, y, x) = {shape}, but the reconstruction will be "
               f"{expected.shape}: " + "; ".join(axes))
    if sorted(shape) == sorted(expected.shape):
        problem += " — the same sizes in another order: save the labels with axes (z, y, x)"
    return problem, ("annotate the reconstruction itself (results/<sample>/02_recon/volume.tif, "
                     "axes z, y, x), or, if the labels are right, change the settings named above "
                     "so that the reconstruction gets their shape")


def value_counts_cached(path: Path, workdir: str | os.PathLike = ".") -> dict[float, int]:
    """Voxels per label value, from the cache when this version of the file was counted before."""
    from .labels import value_counts
    from .readers import read_tiltseries

    stat = path.stat()
    stamp = [stat.st_size, stat.st_mtime_ns]
    cache_file = Path(workdir) / CACHE
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(str(path.resolve()))
    if entry and entry.get("stamp") == stamp:
        return {float(v) if "." in v else int(v): n for v, n in entry["counts"].items()}
    try:
        counts = value_counts(read_tiltseries(path).data)
    except InputError as exc:
        raise ConfigError(f"{exc.source}", exc.problem, exc.fix) from None
    cache[str(path.resolve())] = {"stamp": stamp, "counts": {str(v): n for v, n in counts.items()}}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache))
    except OSError:
        pass  # a cache only
    return counts


def check_writable(folder: str | os.PathLike) -> None:
    """Raise OutputError naming `folder` (or its nearest existing parent, where it would be made)
    unless a file can be created in it. Tried for real: permission bits do not tell for root,
    read-only mounts or immutable folders."""
    from .io import unwritable

    target = Path(folder)
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        raise OutputError(target, "is not a folder, so results cannot be written under it",
                          f"remove or rename it (the workflow writes into {folder}/)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".stemtomo-write-test.", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        error = unwritable(target, exc)
        raise (error or OutputError(target, f"cannot write here ({exc})",
                                    "check the folder and its file system")) from None


def check_results_writable(workdir: str | os.PathLike, samples: list[str]) -> None:
    """The results folder and every sample folder and stage folder already in it take files."""
    results = Path(workdir).resolve() / "results"
    check_writable(results)
    for sample in samples:
        for folder in [results / sample, *sorted((results / sample).glob("*"))]:
            if folder.is_dir():
                check_writable(folder)

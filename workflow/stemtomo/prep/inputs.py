"""Everything a sample brings that can be checked before any job runs: its annotations (a label
volume or a folder of per-slice masks, in its `label_values` encoding), its evaluation truth, its
existing reconstruction (`volume:`) or 2D dataset (`slices:`). Called from the workflow's
common.smk, so a wrong shape, an unknown value, an unpaired file or annotations without Pt stop
the run at once, not after hours of reconstruction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.annotations import STEMTOMO, Encoding, mask_files, read_annotations
from ..core.errors import InputError
from ..core.samples import start_point, stored_shape, volume_shape
from .slices import load_dataset


def mask_inputs(labels: str) -> list[str]:
    """The files a `labels:` entry consists of: the label volume, or every mask of the folder
    (so that adding or changing one slice's mask reruns what depends on the annotations)."""
    path = Path(labels)
    return [str(p) for p in mask_files(path).values()] if path.is_dir() else [labels]


def encoding_of(sample: dict, key: str) -> Encoding:
    return Encoding.from_config(sample.get("label_values"), f"config {key}.label_values")


def check_inputs(config: dict, workdir: str | Path = ".") -> None:
    """Raise InputError (naming the file or key, the problem and the fix) for the first sample
    whose inputs cannot work."""
    workdir = Path(workdir)
    for name, sample in config["samples"].items():
        key = f"samples.{name}"
        kind = start_point(sample)
        if kind == "slices":
            load_dataset(sample["slices"], encoding_of(sample, key), f"config {key}.slices", workdir)
            continue
        shape = volume_shape(config, name, workdir)
        if "labels" in sample:
            check_annotations(workdir / sample["labels"], shape, encoding_of(sample, key),
                              f"config {key}.labels")
        if "truth" in sample:
            check_annotations(workdir / sample["truth"], shape, STEMTOMO, f"config {key}.truth")


def check_annotations(source: Path, shape: tuple[int, int, int] | None, encoding: Encoding,
                      key: str) -> None:
    """Readable, every value in the encoding, Pt somewhere and, where the volume's shape is
    known, the same shape (masks: in-plane shape and slice numbers)."""
    if shape is not None:
        read_annotations(source, shape, encoding, key)
        return
    # The volume's shape follows from the reconstruction: check what the files say on their own.
    if source.is_dir():
        masks = mask_files(source)
        first = stored_in_plane(next(iter(masks.values())))
        shape = (max(masks) + 1, *first)
    else:
        shape = stored_shape(source)
        if len(shape) != 3:
            raise InputError(source, f"labels of shape {shape}, not a (z, y, x) volume",
                             "give a 3D label volume or a folder of per-slice masks")
    read_annotations(source, shape, encoding, key)


def stored_in_plane(path: Path) -> tuple[int, int]:
    from ..core.images import read_image

    return tuple(np.shape(read_image(path)))  # type: ignore[return-value]

"""Annotations from any tool, in stemtomo's classes: label encodings (`label_values`), label
volumes (TIFF/MRC/NPY from napari, Fiji, Amira, Dragonfly) and folders of per-slice masks
(`z0040.png`, one file per annotated slice, the slice index being the last number in the name).

Whatever the input, the result is one (z, y, x) uint8 volume with 0 background/pores, 1 γ-alumina,
2 Pt and 255 unlabelled; a slice without a mask, and any value the encoding calls `unlabelled`
(napari's unpainted 0, say), is unlabelled, so partially painted slices work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .images import IMAGE_SUFFIXES, read_image
from .labels import ALUMINA, BACKGROUND, CLASS_NAMES, IGNORE, PT

# The names label_values uses, and the class each means.
CLASS_KEYS = {"background": BACKGROUND, "alumina": ALUMINA, "pt": PT, "unlabelled": IGNORE}


@dataclass(frozen=True)
class Encoding:
    """How stored label values map onto stemtomo's classes (value → class id or IGNORE)."""

    table: tuple[tuple[int, int], ...]

    @classmethod
    def from_config(cls, label_values: Mapping | None, key: str = "label_values") -> Encoding:
        """From a sample's `label_values` ({class: value or [values]}); stemtomo's own encoding
        (0, 1, 2, 255) when there is none."""
        if not label_values:
            return STEMTOMO
        table: dict[int, int] = {}
        for name, values in label_values.items():
            for v in [values] if isinstance(values, int) else values:
                if int(v) in table:
                    raise InputError(key, f"value {v} is given to two classes",
                                     "give each stored value exactly one class")
                table[int(v)] = CLASS_KEYS[name]
        if PT not in table.values():
            raise InputError(key, "no value is mapped to pt",
                             "name the value(s) your annotations use for Pt, e.g. pt: 3")
        return cls(tuple(sorted(table.items())))

    @property
    def mapping(self) -> dict[int, int]:
        return dict(self.table)

    def describe(self) -> str:
        names = {**CLASS_NAMES, IGNORE: "unlabelled"}
        return ", ".join(f"{v} = {names[c]}" for v, c in self.table)

    def apply(self, stored: np.ndarray, source: str) -> np.ndarray:
        """Stored values → stemtomo's uint8 labels; any value outside the encoding is an error."""
        stored = np.asarray(stored)
        check_integer(str(stored.dtype), source)
        values, counts = np.unique(stored, return_counts=True)
        problem = values_problem(dict(zip(values.tolist(), counts.tolist(), strict=True)), self,
                                 need_labels=False, need_pt=False)
        if problem:
            raise InputError(source, *problem)
        lut = np.full(int(values.max()) + 1, IGNORE, np.uint8)
        for v, c in self.table:
            if v < len(lut):
                lut[v] = c
        return lut[stored.view(np.uint8) if stored.dtype == bool else stored]

    def invert(self, labels: np.ndarray) -> np.ndarray:
        """stemtomo's labels → the stored values (the first value of each class), for writing
        annotations back in the user's own encoding."""
        first: dict[int, int] = {}
        for v, c in self.table:
            first.setdefault(c, v)
        present = set(np.unique(labels).tolist())
        missing = sorted(present - set(first))
        if missing:
            raise InputError("label_values", f"classes {missing} have no stored value",
                             "add a value for them (e.g. unlabelled: 0)")
        dtype = np.uint8 if max(first.values()) < 256 else np.uint16
        lut = np.zeros(256, dtype)
        for c, v in first.items():
            lut[c] = v
        return lut[labels]


STEMTOMO = Encoding(((BACKGROUND, BACKGROUND), (ALUMINA, ALUMINA), (PT, PT), (IGNORE, IGNORE)))
# napari's Labels layer: 0 is unpainted; the annotation helper paints class id + 1.
NAPARI = Encoding(((0, IGNORE), (1, BACKGROUND), (2, ALUMINA), (3, PT)))


def slice_index(path: Path) -> int:
    """The z index of a per-slice mask: the last number in its file name (z0040.png → 40)."""
    numbers = re.findall(r"\d+", path.stem)
    if not numbers:
        raise InputError(path, "the file name holds no slice number",
                         "name per-slice masks with their z index, e.g. z0040.png")
    return int(numbers[-1])


def mask_files(folder: str | Path) -> dict[int, Path]:
    """z index → mask file of a folder of per-slice masks (hidden files ignored)."""
    folder = Path(folder)
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        z = slice_index(path)
        if z in found:
            raise InputError(path, f"slice {z} also has the mask {found[z].name}",
                             "keep one mask per slice")
        found[z] = path
    if not found:
        raise InputError(folder, f"no mask files ({', '.join(IMAGE_SUFFIXES)}) in the folder",
                         "save one mask per annotated slice there, e.g. z0040.png")
    return found


def read_annotations(source: str | Path, shape: tuple[int, int, int], encoding: Encoding,
                     key: str = "labels") -> np.ndarray:
    """stemtomo's (z, y, x) labels from a label volume or a folder of per-slice masks, checked
    against the volume shape they annotate; `key` names the config entry in messages."""
    source = Path(source)
    if source.is_dir():
        labels = np.full(shape, IGNORE, np.uint8)
        for z, path in mask_files(source).items():
            if not 0 <= z < shape[0]:
                raise InputError(path, f"slice {z} is outside the volume's {shape[0]} slices "
                                 f"(0–{shape[0] - 1})", "number masks by the reconstruction's z")
            image = read_image(path)
            if image.shape != tuple(shape[1:]):
                raise InputError(path, f"mask of shape {image.shape}, the volume's slices are "
                                 f"{tuple(shape[1:])} (y, x)", "annotate the reconstruction "
                                 "itself (a slice of volume.tif), at its full size")
            labels[z] = encoding.apply(image, str(path))
    else:
        from .readers import read_tiltseries

        stored = read_tiltseries(source).data
        if stored.shape != tuple(shape):
            raise InputError(source, f"labels have shape {stored.shape}, the volume {tuple(shape)} "
                             "(z, y, x)", f"annotate the reconstruction itself (same shape), or "
                             f"give a folder of per-slice masks as `{key}`")
        labels = encoding.apply(stored, str(source))
    check_labelled(labels, str(source), encoding)
    return labels


def check_integer(dtype: str, source: str | Path) -> None:
    """Label images hold integers; a float image is a density or a probability map, not labels."""
    if dtype != "4-bit" and np.dtype(dtype).kind not in "uib":
        raise InputError(source, f"label values of type {dtype} (not integers)",
                         "save the annotations as an integer label image (uint8/uint16)")


def values_problem(counts: dict[float, int], encoding: Encoding | None = None,
                   need_labels: bool = True, need_pt: bool = True) -> tuple[str, str] | None:
    """(problem, fix) when stored label values (value → voxels) cannot train the networks, else
    None: values outside the encoding (stemtomo's by default), nothing labelled, or (`need_pt`)
    no Pt at all — what the networks learn and early stopping watches."""
    encoding = encoding or STEMTOMO
    found = ", ".join(f"{v}: {n} voxels" for v, n in sorted(counts.items())[:8])
    bad = sorted(v for v in counts if v not in encoding.mapping)
    if bad and encoding == STEMTOMO:
        return (f"label values {bad[:10]} are not classes (values found: {found})",
                f"use {BACKGROUND} background/pores, {ALUMINA} γ-alumina, {PT} Pt and {IGNORE} "
                "for unlabelled voxels, or describe your values with the sample's `label_values` "
                "(e.g. {unlabelled: 0, background: 1, alumina: 2, pt: 3} for napari)")
    if bad:
        return (f"label values {bad[:10]} are not in the label encoding ({encoding.describe()}) "
                f"(values found: {found})",
                "map them with the sample's `label_values`, or correct the file")
    classes = {encoding.mapping[v] for v, n in counts.items() if n}
    return classes_problem(classes, encoding, found, need_labels, need_pt)


def classes_problem(classes: set[int], encoding: Encoding, found: str, need_labels: bool = True,
                    need_pt: bool = True) -> tuple[str, str] | None:
    """(problem, fix) when the classes present (ids, IGNORE included) cannot train: nothing
    labelled or no Pt; `found` says what the annotations hold."""
    own = encoding == STEMTOMO
    if need_labels and not classes - {IGNORE}:
        return (f"no labelled voxels: every voxel is {'255 ' if own else ''}(unlabelled)",
                "annotate at least a few slices" + ("" if own else ", or check `label_values`"))
    if need_pt and PT not in classes:
        return (f"the labels hold no Pt{f' ({PT})' if own else ''} at all (values found: {found})",
                f"label the Pt nanoparticles{f' {PT}' if own else ''} in the annotated slices: "
                "the networks learn Pt from them and training stops on the Pt Dice" + (
                    "" if own else " (or check that `label_values` maps your Pt value to pt)"))
    return None


def check_labelled(labels: np.ndarray, source: str, encoding: Encoding | None = None) -> None:
    """stemtomo labels that can train: some labelled voxels, and Pt among them (messages in the
    terms of the `encoding` the annotations came in)."""
    from .labels import value_counts

    counts = value_counts(labels)
    names = {**CLASS_NAMES, IGNORE: "unlabelled"}
    found = ", ".join(f"{names.get(c, c)}: {n} voxels" for c, n in sorted(counts.items()))
    problem = classes_problem(set(counts), encoding or STEMTOMO, found)
    if problem:
        raise InputError(source, *problem)


def annotated_slices(labels: np.ndarray) -> np.ndarray:
    return np.flatnonzero((labels != IGNORE).any(axis=(1, 2)))

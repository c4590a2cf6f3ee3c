"""An annotation session without the viewer: what the helper opens (the sample's volume, its
current annotations, a prediction to correct, the suggested slices) and how it saves (only the
sample's annotation file or folder, in the sample's own encoding)."""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.annotations import NAPARI, STEMTOMO, Encoding, annotated_slices, mask_files, read_annotations
from ..core.errors import InputError
from ..core.images import IMAGE_SUFFIXES, write_png
from ..core.labels import IGNORE
from ..core.readers import read_tiltseries
from ..core.samples import start_point

log = logging.getLogger("stemtomo.annotate")


@dataclass
class Session:
    sample: str
    volume: np.ndarray                 # (z, y, x) float32
    labels: np.ndarray                 # stemtomo's classes, IGNORE where unannotated
    target: Path                       # the sample's annotation folder or file (written on save)
    encoding: Encoding                 # how `target` stores the classes
    suggestions: list[int] = field(default_factory=list)  # slices to annotate next, best first
    keep: set[int] = field(default_factory=set)            # slices saved even if unchanged
    configured: bool = True            # False: the config has no `labels:` yet (say how to add it)

    def layer_values(self) -> np.ndarray:
        """The labels as napari paints them (0 unpainted, class id + 1)."""
        return NAPARI.invert(self.labels)

    def prefill(self, prediction: np.ndarray, slices: list[int]) -> None:
        """Put a network's prediction on `slices` that nobody annotated, to be corrected; they
        are saved even if left unchanged."""
        if prediction.shape != self.labels.shape:
            raise InputError("prediction", f"shape {prediction.shape}, the volume {self.labels.shape}",
                             "segment this sample's own volume first")
        done = set(annotated_slices(self.labels).tolist())
        for z in slices:
            if z not in done:
                self.labels[z] = prediction[z]
                self.keep.add(z)

    def save(self, values: np.ndarray) -> list[int]:
        """Write the layer `values` (napari encoding) into the sample's annotations: every
        annotated, painted or pre-filled slice (a slice erased completely loses its mask);
        returns the slices written."""
        labels = NAPARI.apply(values, "labels layer")
        slices = sorted(set(annotated_slices(labels).tolist()) | self.keep)
        if self.target.suffix:  # a label volume: the whole volume, unannotated slices unlabelled
            write_label_volume(self.target, self.encoding.invert(labels))
        else:
            existing = mask_files(self.target) if any(_masks(self.target)) else {}
            for z in slices:
                write_mask(mask_path(self.target, z, existing), self.encoding.invert(labels[z]))
            for z in set(existing) - set(slices):  # erased in the viewer
                existing[z].unlink()
        self.labels = labels
        log.info("saved %d annotated slices to %s", len(slices), self.target)
        return slices


def _masks(folder: Path):
    return (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def mask_path(folder: Path, z: int, existing: dict[int, Path]) -> Path:
    """Where slice z's mask goes: its current file, else a name like the folder's others (the
    last number replaced by z, same width and suffix), else z0040.png."""
    if z in existing:
        return existing[z]
    if existing:
        model = next(iter(existing.values()))
        numbers = list(re.finditer(r"\d+", model.stem))[-1]
        stem = f"{model.stem[:numbers.start()]}{z:0{len(numbers.group())}d}{model.stem[numbers.end():]}"
        return folder / f"{stem}{model.suffix}"
    return folder / f"z{z:04d}.png"


def write_mask(path: Path, stored: np.ndarray) -> None:
    """One slice's mask in the file's own format."""
    from ..core import io

    suffix = path.suffix.lower()
    if suffix == ".png":
        write_png(path, stored)
    elif suffix == ".npy":
        io.write_npy(path, stored)
    else:
        io.write_tiff(path, stored, None, axes="YX")


def write_label_volume(path: Path, stored: np.ndarray) -> None:
    from ..core import io

    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        io.write_tiff(path, stored, None)
    elif suffix == ".npy":
        io.write_npy(path, stored)
    else:
        io.write_mrc(path, stored.astype(np.float32), None)


def open_session(config: dict, sample: str, results: str | Path = "results",
                 workdir: str | Path = ".") -> Session:
    """The session of a validated config's sample: its volume (stemtomo's result, else the
    user's `volume:` file), its annotations and the suggested slices where they exist."""
    workdir, results = Path(workdir), Path(results)
    if sample not in config["samples"]:
        raise InputError(f"config samples.{sample}", "no such sample",
                         f"use one of {', '.join(config['samples'])}")
    cfg = config["samples"][sample]
    if start_point(cfg) == "slices":
        raise InputError(f"config samples.{sample}", "a `slices:` dataset has its masks already",
                         "edit its mask files in your image tool")
    volume = _volume(cfg, sample, results, workdir)
    encoding = Encoding.from_config(cfg.get("label_values"), f"samples.{sample}.label_values")
    if "labels" in cfg:
        target, configured = workdir / cfg["labels"], True
        labels = read_annotations(target, volume.shape, encoding, f"samples.{sample}.labels") \
            if target.exists() and (target.is_file() or any(target.iterdir())) \
            else np.full(volume.shape, IGNORE, np.uint8)
    else:
        target, configured = workdir / "annotations" / sample, False
        encoding = encoding if cfg.get("label_values") else STEMTOMO
        labels = np.full(volume.shape, IGNORE, np.uint8)
    if not target.suffix:
        target.mkdir(parents=True, exist_ok=True)
    return Session(sample, volume, labels, target, encoding,
                   suggested_slices(results / sample / "06_evaluate" / "suggestions.csv"),
                   configured=configured)


def _volume(cfg: dict, sample: str, results: Path, workdir: Path) -> np.ndarray:
    path = results / sample / "02_recon" / "volume.tif"
    if path.is_file():
        return read_tiltseries(path).data.astype(np.float32)
    if start_point(cfg) == "volume":
        from ..recon.external import import_volume

        return import_volume(str(workdir / cfg["volume"]), cfg.get("volume_axes", "zyx"),
                             cfg.get("pixel_size_nm", 1.0), f"samples.{sample}")[0]
    raise InputError(path, "no reconstruction yet",
                     f"run the workflow up to it first: snakemake --cores all {path}")


def suggested_slices(path: Path) -> list[int]:
    """The ranked slices of suggestions.csv (rule agreement), best first; [] without it."""
    if not path.is_file():
        return []
    with open(path) as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["rank"]) > 0]
    return [int(r["z"]) for r in sorted(rows, key=lambda r: int(r["rank"]))]

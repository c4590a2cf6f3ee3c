"""A 2D dataset as the study's: training and validation images with their masks (e.g. 45 + 15
patches of 512² px), found by glob patterns and paired by a stated rule, stacked into one
(image, y, x) array — training images first, then validation — with stemtomo's labels beside it.

Pairing: `name` pairs an image and a mask with the same file name without suffix (in their own
folders, `img/0001.tif` ↔ `mask/0001.png`); `sorted` pairs the n-th image with the n-th mask in
sorted order (for differing names such as `img_0001.tif` ↔ `label_0001.png`), after checking the
counts. Every pair must have one shape, and all images the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.annotations import Encoding, check_labelled
from ..core.errors import InputError
from ..core.images import read_image
from ..core.samples import expand

PARTS = ("train", "val")


@dataclass
class Dataset:
    images: np.ndarray   # (n, y, x) float32: training images, then validation images
    labels: np.ndarray   # (n, y, x) uint8, stemtomo's classes, 255 unlabelled
    record: dict         # pairs per part, train_slices / val_slices indices, shape


def pair_files(images: list[Path], masks: list[Path], pairing: str,
               key: str) -> list[tuple[Path, Path]]:
    """(image, mask) pairs by `pairing`; an unpaired file is an error naming it."""
    if pairing == "sorted":
        if len(images) != len(masks):
            raise InputError(key, f"{len(images)} images but {len(masks)} masks",
                             "give one mask per image (pairing: sorted pairs them in sorted order)")
        return list(zip(images, masks, strict=True))
    by_stem = {m.stem: m for m in masks}
    unpaired = [i.name for i in images if i.stem not in by_stem]
    extra = sorted(set(by_stem) - {i.stem for i in images})
    if unpaired or extra:
        raise InputError(key, f"unpaired files: images without a mask {unpaired[:5]}, masks "
                         f"without an image {extra[:5]}", "name each mask like its image "
                         "(pairing: name), or set slices.pairing: sorted for differing names")
    return [(i, by_stem[i.stem]) for i in images]


def find_pairs(slices: dict, key: str, workdir: str | Path = ".") -> dict[str, list]:
    """The (image, mask) pairs of the training and validation parts of a `slices:` entry."""
    pairs = {}
    for part in PARTS:
        spec = slices[part]
        found = {k: expand(spec[k], workdir) for k in ("images", "masks")}
        for k, files in found.items():
            if not files:
                raise InputError(f"{key}.{part}.{k}", f"the pattern {spec[k]!r} matches no file",
                                 "fix the glob pattern (relative to the working directory)")
        pairs[part] = pair_files(found["images"], found["masks"], slices["pairing"],
                                 f"{key}.{part}")
    return pairs


def load_dataset(slices: dict, encoding: Encoding, key: str,
                 workdir: str | Path = ".") -> Dataset:
    """Read, check and stack every pair; masks mapped to stemtomo's classes by `encoding`."""
    pairs = find_pairs(slices, key, workdir)
    images, labels, record = [], [], {"pairing": slices["pairing"]}
    shape = None
    for part in PARTS:
        record[part] = []
        for image_path, mask_path in pairs[part]:
            image, mask = read_image(image_path), read_image(mask_path)
            if image.shape != mask.shape:
                raise InputError(mask_path, f"mask of shape {mask.shape} for the image "
                                 f"{image_path.name} of shape {image.shape}",
                                 "pair each image with its own mask (check slices.pairing)")
            if shape is None:
                shape = image.shape
            elif image.shape != shape:
                raise InputError(image_path, f"image of shape {image.shape}, the first image is "
                                 f"{shape}", "crop or pad the images of a dataset to one size")
            if image.dtype.kind not in "uif":
                raise InputError(image_path, f"unsupported pixel type {image.dtype}",
                                 "save the images as integers or real numbers")
            record[part].append({"index": len(images), "image": str(image_path),
                                 "mask": str(mask_path)})
            images.append(image.astype(np.float32))
            labels.append(encoding.apply(mask, str(mask_path)))
    stack, masks = np.stack(images), np.stack(labels)
    n_train = len(record["train"])
    record.update(train_slices=list(range(n_train)), val_slices=list(range(n_train, len(stack))),
                  shape_zyx=list(stack.shape))
    check_labelled(masks, key, encoding)
    return Dataset(stack, masks, record)

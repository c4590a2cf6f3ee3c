"""The alignment's working copy of a tilt series: binned, background-free images, and the
resampling that views a raw image in the aligned frame."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..core import geometry
from ..core.errors import InputError
from ..core.intensity import vacuum_level


def _power_of_two_binning(shape: tuple[int, ...], width: int) -> int:
    """Smallest power-of-two binning that brings the images to ≤ `width` px (as far as they divide)."""
    b = 1
    while max(shape[-2:]) / b > width and all(s % (2 * b) == 0 for s in shape[-2:]):
        b *= 2
    return b


def working_binning(shape: tuple[int, ...], setting: int | str) -> int:
    """The requested binning, or for 'auto' the binning that gives images ≤ 512 px. It must divide
    the image size: binning crops the remainder, which would move the image centre by half of it
    and bias the axis offset and the shifts by that much."""
    if setting == "auto":
        return _power_of_two_binning(shape, 512)
    b = int(setting)
    if any(s % b for s in shape[-2:]):
        raise InputError("align.binning", f"{b} does not divide the {shape[-2]}×{shape[-1]} px "
                         "images", "use auto, a divisor of both sizes, or crop the images at "
                         "import (import.crop) to a multiple of it")
    return b


def prepare(stack: np.ndarray, binning: int) -> np.ndarray:
    """Binned float64 images with each image's vacuum level subtracted."""
    work = np.stack([geometry.bin_mean(im.astype(np.float64), binning) for im in stack])
    return work - np.array([vacuum_level(im) for im in work])[:, None, None]


def view(image: np.ndarray, angle_deg: float, translation_yx: np.ndarray, stretch: float = 1.0,
         order: int = 1, cval: float = 0.0) -> np.ndarray:
    """Sample a raw image in the aligned frame, optionally stretched by `stretch` along x.

    out(p) = raw(c + R(φ)·(diag(1, stretch)·(p − c) + t)), i.e. geometry.aligned_from_raw with the
    axis-frame translation t = R⁻¹s + (0, δ), plus the cosine stretch about the tilt axis.
    """
    c = np.array([geometry.centre(image.shape[0]), geometry.centre(image.shape[1])])
    rot = geometry.rotation_yx(angle_deg)
    m = rot @ np.diag([1.0, stretch])
    offset = c - m @ c + rot @ np.asarray(translation_yx, dtype=float)
    return ndimage.affine_transform(image, m, offset=offset, order=order, mode="constant",
                                    cval=cval, prefilter=order > 1)


def views(work: np.ndarray, indices: np.ndarray, angle_deg: float, translations: np.ndarray,
          order: int = 1) -> np.ndarray:
    """The tilts `indices` of the working copy, each viewed in the aligned frame."""
    return np.stack([view(work[i], angle_deg, translations[i], order=order) for i in indices])


def rebin(stack: np.ndarray, width: int) -> np.ndarray:
    """A copy binned to ≤ `width` px (see _power_of_two_binning); the stack itself if no binning."""
    f = _power_of_two_binning(stack.shape, width)
    return stack if f == 1 else np.stack([geometry.bin_mean(im, f) for im in stack])


def has_signal(work: np.ndarray, ratio: float = 0.25) -> np.ndarray:
    """Tilts whose smoothed image varies at least `ratio` × the median: excludes blank frames
    (beam blanked, lost scan) that hold only detector noise."""
    spread = np.array([ndimage.gaussian_filter(im, 2.0).std() for im in work])
    return spread > ratio * np.median(spread)

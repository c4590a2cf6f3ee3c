"""The coarse pass before the axis search: neighbour correlations in the raw frame, on a copy
binned to ≤ 128 px, registered as one batch.

They serve twice. (1) Tilts that resemble none of their neighbours (a noise-only frame, a lost
scan) are screened out, so the chain correlates across them instead of losing every later tilt
on that side. (2) When the shifts exceed a few percent of the field, the working copy is
pre-centred by the chained shifts (whole pixels, no resampling), so that the common-line profiles
and the correlations compare the same part of an object that runs out of the field, and the
along-axis registration of a layered object starts within a layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from .translations import Correlator
from .working import rebin

PRECENTRE_FRACTION = 0.03  # pre-centre when a chained shift exceeds this fraction of the field
LINK_STEPS = 3             # tilts resemble tilts up to this many steps away: two bad frames in a row


@dataclass
class CoarsePass:
    shifts: np.ndarray        # (n, 2) raw-frame shifts (work px, whole pixels) removed from the copy
    outliers: np.ndarray      # bool (n,): tilts that resemble none of their neighbours
    neighbour_quality: list   # correlation of each consecutive pair of usable tilts (angle order)
    precentred: bool
    max_shift_px: float       # largest chained shift, work px
    radius: float             # radius (work px) of the disk about the centre to compare


def screen_and_precentre(work: np.ndarray, angles: np.ndarray, usable: np.ndarray,
                         band: tuple[float, float], taper: float,
                         bad_quality: float) -> tuple[np.ndarray, CoarsePass]:
    """The working copy (pre-centred where the shifts are large) and what the pass found."""
    n, h, w = work.shape
    small = rebin(work, 128)
    f = w / small.shape[2]
    order = np.flatnonzero(usable)[np.argsort(angles[usable])]
    outliers = np.zeros(n, bool)
    quality: list[float] = []
    shifts = np.zeros((n, 2))
    if len(order) >= 3:
        correlate = Correlator(small.shape[1:], band, taper, 10, 0.25)
        links = [correlate(small[order[:-d]], small[order[d:]]).quality
                 for d in range(1, min(LINK_STEPS, len(order) - 1) + 1)]
        outliers[order] = _resembles_none(links, bad_quality)
        keep = order[~outliers[order]]
        steps = correlate(small[keep[:-1]], small[keep[1:]]).shift if len(keep) > 1 else np.zeros((0, 2))
        quality = [round(float(q), 4) for q in links[0]]
        chained = np.concatenate([[[0.0, 0.0]], np.cumsum(steps, axis=0)]) * f
        # About the series' mean position, not one tilt's: which tilt anchors the chain (a noise
        # frame at 0° moves it) must not move the copy's centre off the axis, where the disk of
        # the common-line profiles would take in different parts of a field-filling object.
        shifts[keep] = chained - chained.mean(axis=0)
        # Screened tilts take the shift of their nearest kept neighbour in angle.
        for i in np.flatnonzero(~np.isin(np.arange(n), keep)):
            shifts[i] = shifts[keep[int(np.argmin(np.abs(angles[keep] - angles[i])))]]
    max_shift = float(np.abs(shifts).max())
    if max_shift <= PRECENTRE_FRACTION * min(h, w):
        return work, CoarsePass(np.zeros((n, 2)), outliers, quality, False, max_shift,
                                min(h, w) / 2 - 1)
    shifts = np.round(shifts)
    centred = np.stack([shift_whole(im, -s) for im, s in zip(work, shifts, strict=True)])
    return centred, CoarsePass(shifts, outliers, quality, True, max_shift,
                               _common_radius(work, shifts))


def _common_radius(work: np.ndarray, shifts: np.ndarray) -> float:
    """Radius of the disk about the centre that the profiles and residuals may use. Every tilt
    of the pre-centred copy sees the disk that avoids all the moved image borders; the full
    inscribed disk serves as well unless the object runs out of the field (then the filled-in
    band would cut it at a different place in every tilt)."""
    h, w = work.shape[1:]
    full = min(h, w) / 2 - 1
    common = float(min(h / 2 - np.abs(shifts[:, 0]).max(), w / 2 - np.abs(shifts[:, 1]).max()) - 1)
    return common if leaves_field(work) else full


def leaves_field(work: np.ndarray, fraction: float = 0.5) -> bool:
    """Whether the object runs out of the image in more than `fraction` of the tilts: the
    smoothed border strip rises half way from the image's background (5th percentile) to its
    bright part (99th). (An object that only grazes the border at a few tilts does not count.)"""
    smooth = ndimage.uniform_filter(work, (1, 5, 5))
    low, high = np.percentile(smooth.reshape(len(work), -1), [5, 99], axis=1)
    strip = np.concatenate([smooth[:, :3].reshape(len(work), -1), smooth[:, -3:].reshape(len(work), -1),
                            smooth[:, :, :3].reshape(len(work), -1),
                            smooth[:, :, -3:].reshape(len(work), -1)], axis=1)
    touching = strip.max(axis=1) > low + 0.5 * (high - low)
    return bool(touching.mean() > fraction)


def _resembles_none(quality: list[np.ndarray], ratio: float) -> np.ndarray:
    """Per tilt (angle order): outside the largest group of tilts linked by correlations of at
    least `ratio` × the median of neighbouring pairs; quality[d - 1] holds the correlations of
    tilts d steps apart. Links over several steps, so that the chain can cross bad frames;
    groups, so that bad frames in a row (which may well resemble each other) are all caught."""
    m = len(quality[0]) + 1
    level = ratio * max(float(np.median(quality[0])), 0.0)
    pairs = [(k, k + d) for d, q in enumerate(quality, start=1) for k in np.flatnonzero(q >= level)]
    rows, cols = (np.array([p[i] for p in pairs], int) for i in (0, 1))
    graph = sparse.coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(m, m))
    _, group = csgraph.connected_components(graph, directed=False)
    return group != np.bincount(group).argmax()


def shift_whole(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The image moved by whole pixels (y, x), zeros (vacuum) where nothing was recorded."""
    dy, dx = (int(v) for v in shift)
    h, w = image.shape
    out = np.zeros_like(image)
    ys, yd = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    xs, xd = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[yd, xd] = image[ys, xs]
    return out

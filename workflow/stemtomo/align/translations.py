"""Shifts perpendicular to the tilt axis: band-passed, tapered, subpixel cross-correlation outward
from the lowest tilt, the higher-tilt image cosine-stretched about the axis (Guckenberger 1982;
IMOD tiltxcorr), against either the neighbour or the cumulative sum of aligned lower tilts."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .registration import Registration, bandpass, register, signed_index, taper
from .working import view


def outward_order(angles: np.ndarray,
                  usable: np.ndarray | None = None) -> tuple[int, list[tuple[int, int]]]:
    """Reference (the usable tilt of smallest |angle|: a blank or noise frame at 0° must not anchor
    the chain) and the (previous, next) pairs walking outward on both sides."""
    order = np.argsort(angles)
    distance = np.abs(angles[order]).astype(float)
    if usable is not None and usable.any():
        distance[~usable[order]] = np.inf
    ref_pos = int(np.argmin(distance))
    pairs = [(int(order[k - 1]), int(order[k])) for k in range(ref_pos + 1, len(order))]
    pairs += [(int(order[k + 1]), int(order[k])) for k in range(ref_pos - 1, -1, -1)]
    return int(order[ref_pos]), pairs


class Correlator:
    """Registration of images of one shape with a fixed band-pass, taper and search radius."""

    def __init__(self, shape: tuple[int, int], band: tuple[float, float], taper_fraction: float,
                 upsample: int, max_shift_fraction: float) -> None:
        self.filt = bandpass(shape, band[0], band[1])
        self.window = taper(shape, taper_fraction)
        self.upsample = upsample
        self.max_shift = max_shift_fraction * min(shape)

    def __call__(self, reference: np.ndarray, moving: np.ndarray) -> Registration:
        """One pair, or a batch of pairs along the leading axis."""
        return register(reference, moving, self.upsample, self.filt, self.window, self.max_shift,
                        ndim=2)


def translation_chain(work: np.ndarray, angles: np.ndarray, axis_angle: float,
                      translations: np.ndarray, usable: np.ndarray, correlate: Correlator, *,
                      reference: str = "neighbour", window: int = 3, bad_quality: float = 0.3,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axis-frame x translations by stretched cross-correlation outward from the lowest tilt.

    `translations` holds the current (n, 2) axis-frame estimate (y from the profiles, x including
    the current axis offset, which sets the stretch centre). `reference` is "neighbour" or
    "cumulative" (the sum of the last `window` aligned tilts on that side); a tilt correlating
    below `bad_quality` × the median of the others is flagged. Returns (translations, quality, bad).
    """
    t = translations.copy()
    ref, pairs = outward_order(angles, usable)
    cos = np.cos(np.deg2rad(angles))
    quality = np.full(len(angles), np.nan)  # stays NaN where a tilt has no signal to correlate
    bad = ~usable.copy()
    last_good = {1: ref, -1: ref}
    members = {1: [ref], -1: [ref]}  # aligned tilts per side, for the cumulative reference
    for _prev, b in tqdm(pairs, desc="align", unit="tilt", disable=not progress):
        side = 1 if angles[b] > angles[ref] else -1
        a = last_good[side]  # skip over flagged tilts
        t[b, 1] = t[a, 1]  # start from the neighbour's translation
        if bad[b]:
            continue
        k_b = cos[b] / cos[a]
        moving = view(work[b], axis_angle, t[b], k_b)
        if reference == "cumulative":
            target = sum(view(work[j], axis_angle, t[j], cos[j] / cos[a])
                         for j in members[side][-window:])
        else:
            target = view(work[a], axis_angle, t[a])
        r = correlate(target, moving)
        t[b, 1] += r.shift[1] * k_b
        quality[b] = r.quality
        good_q = quality[[j for j in members[1] + members[-1] if j != ref]]
        if len(good_q) >= 3 and r.quality < bad_quality * np.median(good_q):
            bad[b] = True
            t[b, 1] = t[a, 1]
            continue
        last_good[side] = b
        members[side].append(b)
    # The reference tilt's quality: its correlation with its first good neighbour.
    quality[ref] = max((quality[j] for j in members[1][1:2] + members[-1][1:2]), default=1.0)
    return t, quality, bad


def integer_chain(stack: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Baseline: plain integer-pixel cross-correlation between neighbours, chained outward from
    the lowest tilt, no filtering, stretching or rotation (as tomviz's default shift alignment).
    Returns raw-frame shifts (n, 2) relative to the reference tilt."""
    ref, pairs = outward_order(np.asarray(angles))
    shifts = np.zeros((len(angles), 2))
    for a, b in pairs:
        fa = np.fft.fft2(stack[a] - stack[a].mean())
        fb = np.fft.fft2(stack[b] - stack[b].mean())
        cc = np.fft.ifft2(np.conj(fa) * fb).real
        peak = np.array(np.unravel_index(int(np.argmax(cc)), cc.shape))
        shifts[b] = shifts[a] + signed_index(peak, cc.shape)
    return shifts - shifts[ref]

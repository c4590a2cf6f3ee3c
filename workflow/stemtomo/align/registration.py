"""Subpixel translation registration by cross-correlation, for one pair or a batch at once.

Band-passed cross-correlation; the integer peak is refined by evaluating the correlation on an
upsampled grid around it with a matrix-multiply DFT (Guizar-Sicairos, Thurman & Fienup, Opt. Lett.
33, 156, 2008), so precision is 1/upsample px without padding whole images. Works in 1D and 2D;
leading axes of the arrays are a batch (e.g. the along-axis profiles of every tilt against their
mean, or every tilt against its reprojection), registered in one vectorised pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Registration:
    shift: np.ndarray        # (..., d): displacement of `moving` relative to `reference` (px per axis)
    quality: np.ndarray | float  # (...): normalised correlation at the peak, in [-1, 1]


def taper(shape: tuple[int, ...], fraction: float = 0.1) -> np.ndarray:
    """Separable cosine (Tukey) edge taper: 1 inside, smoothly 0 at the borders."""
    window = np.ones(shape)
    for axis, n in enumerate(shape):
        w = np.ones(n)
        m = max(1, int(round(fraction * n)))
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
        w[:m], w[n - m:] = ramp, ramp[::-1]
        window *= w.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return window


def bandpass(shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    """Gaussian band-pass in the Fourier domain; `low`/`high` in cycles/px (0.5 = Nyquist).

    The high-pass removes slow intensity gradients (thickness, illumination) that bias the peak,
    the low-pass suppresses shot noise. Returned for np.fft.fftn layout.
    """
    k2 = sum(np.meshgrid(*[np.fft.fftfreq(n) ** 2 for n in shape], indexing="ij", sparse=True))
    hp = 1.0 - np.exp(-k2 / (2 * low**2)) if low > 0 else np.ones_like(k2)
    lp = np.exp(-k2 / (2 * high**2)) if high < 0.5 else 1.0
    return hp * lp


def signed_index(index: np.ndarray, shape: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """FFT indices as signed offsets: an index past n // 2 is the negative offset index − n (the
    peak of a circular correlation at a negative shift)."""
    index, n = np.asarray(index, dtype=float), np.asarray(shape)
    return np.where(index > n // 2, index - n, index)


def fourier_shift(array: np.ndarray, shift: np.ndarray | float) -> np.ndarray:
    """Translate a periodic array by a subpixel shift via the Fourier shift theorem.

    `shift` has shape (..., d): its last axis gives the shift along the last d axes of `array`;
    its leading axes (if any) match leading axes of `array`, each entry with its own shift (e.g.
    (n, 1) shifts for n rows). A scalar shifts a 1D array.
    """
    shift = np.atleast_1d(np.asarray(shift, dtype=float))
    d = shift.shape[-1]
    axes = tuple(range(array.ndim - d, array.ndim))
    spec = np.fft.fftn(array, axes=axes)
    for k, axis in enumerate(axes):
        f = np.fft.fftfreq(array.shape[axis]).reshape([-1 if a == k else 1 for a in range(d)])
        s = shift[..., k].reshape(shift.shape[:-1] + (1,) * d)
        spec = spec * np.exp(-2j * np.pi * f * s)
    return np.fft.ifftn(spec, axes=axes).real


def register(reference: np.ndarray, moving: np.ndarray, upsample: int = 20,
             filt: np.ndarray | None = None, window: np.ndarray | None = None,
             max_shift: float | None = None, ndim: int | None = None) -> Registration:
    """Shift s such that moving(r) ≈ reference(r - s), to 1/upsample px.

    The last `ndim` axes (default: all axes of `reference`) are the signal; leading axes of
    `moving` (and of `reference`, or it is shared) are a batch, giving shifts (batch..., ndim).
    `filt` is a Fourier-domain filter (e.g. :func:`bandpass`), `window` a spatial taper applied to
    both images after removing their means, `max_shift` limits the search radius (px). With a
    window, the moving image is re-registered once after undoing the first estimate, because a
    taper shared by both images pulls the peak towards zero shift.
    """
    ref = np.asarray(reference, dtype=np.float64)
    mov = np.asarray(moving, dtype=np.float64)
    ndim = ndim or ref.ndim
    first = _register_once(ref, mov, upsample, filt, window, max_shift, ndim)
    if window is None:
        return first
    redo = np.any(np.abs(first.shift) > 1.0 / upsample, axis=-1)
    if not np.any(redo):
        return first
    second = _register_once(ref, fourier_shift(mov, -first.shift), upsample, filt, window, 2.0, ndim)
    shift = np.where(redo[..., None], first.shift + second.shift, first.shift)
    quality = np.where(redo, second.quality, first.quality)
    return Registration(shift, float(quality) if np.ndim(quality) == 0 else quality)


def _register_once(ref: np.ndarray, mov: np.ndarray, upsample: int, filt: np.ndarray | None,
                   window: np.ndarray | None, max_shift: float | None, ndim: int) -> Registration:
    axes = tuple(range(-ndim, 0))
    if window is not None:
        ref = (ref - ref.mean(axis=axes, keepdims=True)) * window
        mov = (mov - mov.mean(axis=axes, keepdims=True)) * window
    fr, fm = np.fft.fftn(ref, axes=axes), np.fft.fftn(mov, axes=axes)
    if filt is not None:
        fr, fm = fr * filt, fm * filt
    dc = (Ellipsis,) + (0,) * ndim
    fr[dc] = fm[dc] = 0.0  # correlation of zero-mean signals
    spectrum = np.conj(fr) * fm
    cc = np.fft.ifftn(spectrum, axes=axes).real
    shape = cc.shape[-ndim:]
    batch = cc.shape[:-ndim]
    if max_shift is not None:
        grids = np.meshgrid(*[np.fft.fftfreq(n) * n for n in shape], indexing="ij", sparse=True)
        cc = np.where(sum(g**2 for g in grids) <= max_shift**2, cc, -np.inf)
    flat = np.argmax(cc.reshape(batch + (-1,)), axis=-1)
    peak = signed_index(np.stack(np.unravel_index(flat, shape), axis=-1), shape)  # (batch..., d)
    # Refine on a (1.5 px)^d neighbourhood sampled every 1/upsample px.
    m = int(np.ceil(1.5 * upsample))
    offsets = (np.arange(m) - m // 2) / upsample
    grids = peak[..., None] + offsets                                          # (batch..., d, m)
    local = _evaluate(spectrum, peak, offsets).reshape(batch + (-1,))
    best = np.argmax(local, axis=-1)
    pick = np.stack(np.unravel_index(best, (m,) * ndim), axis=-1)             # (batch..., d)
    shift = np.take_along_axis(grids, pick[..., None], axis=-1)[..., 0]
    peak_value = np.take_along_axis(local, best[..., None], axis=-1)[..., 0]
    norm = np.sqrt(np.sum(np.abs(fr) ** 2, axis=axes) * np.sum(np.abs(fm) ** 2, axis=axes))
    # Parseval: the spectra carry the 1/N of the inverse transform
    quality = np.where(norm > 0, peak_value / np.where(norm > 0, norm, 1.0), 0.0)
    return Registration(shift, float(quality) if np.ndim(quality) == 0 else quality)


def _evaluate(spectrum: np.ndarray, peak: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Inverse DFT of the last d axes of `spectrum` (batch..., n_1, ..., n_d) at the positions
    peak[..., k] + offsets along axis k: (batch..., m, ..., m). The per-entry integer peak is a
    phase ramp on the spectrum, so one kernel per axis serves the whole batch (one matrix product
    instead of a kernel of complex exponentials per entry)."""
    d = peak.shape[-1]
    batch = spectrum.shape[:-d]
    out = spectrum
    for k in range(d):
        axis = len(batch) + k
        n = spectrum.shape[axis]
        freq = np.fft.fftfreq(n) * n
        ramp = np.exp(2j * np.pi * freq * peak[..., k, None] / n)            # (batch..., n)
        moved = np.moveaxis(out, axis, -1)                                  # (batch..., others..., n)
        ramp = ramp.reshape(batch + (1,) * (moved.ndim - len(batch) - 1) + (n,))
        kernel = np.exp(2j * np.pi * freq[:, None] * offsets[None, :] / n)   # (n, m)
        out = np.moveaxis((moved * ramp) @ kernel, -1, axis)
    return out.real

"""Subpixel translation registration by cross-correlation.

Band-passed cross-correlation; the integer peak is refined by evaluating the correlation on an
upsampled grid around it with a matrix-multiply DFT (Guizar-Sicairos, Thurman & Fienup, Opt. Lett.
33, 156, 2008), so precision is 1/upsample px without padding whole images. Works in 1D and 2D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Registration:
    shift: np.ndarray   # displacement of `moving` relative to `reference` (per axis, px)
    quality: float      # normalised correlation at the peak, in [-1, 1]


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


def _dft_kernel(n: int, positions: np.ndarray) -> np.ndarray:
    """(n, m) matrix: exp(2πi k x / n) for signed frequencies k and sample positions x."""
    k = np.fft.fftfreq(n) * n
    return np.exp(2j * np.pi * np.outer(k, positions) / n)


def _evaluate(spectrum: np.ndarray, grids: list[np.ndarray]) -> np.ndarray:
    """Inverse DFT of `spectrum` at arbitrary positions per axis (separable matrix products)."""
    out = spectrum
    for axis, pos in enumerate(grids):
        kernel = _dft_kernel(spectrum.shape[axis], pos)
        out = np.moveaxis(np.tensordot(out, kernel, axes=([axis], [0])), -1, axis)
    return out.real


def register(reference: np.ndarray, moving: np.ndarray, upsample: int = 20,
             filt: np.ndarray | None = None, window: np.ndarray | None = None,
             max_shift: float | None = None) -> Registration:
    """Shift s such that moving(r) ≈ reference(r - s), to 1/upsample px.

    `filt` is a Fourier-domain filter (e.g. :func:`bandpass`), `window` a spatial taper applied to
    both images after removing their means, `max_shift` limits the search radius (px). With a
    window, the moving image is re-registered once after undoing the first estimate, because a
    taper shared by both images pulls the peak towards zero shift.
    """
    first = _register_once(reference, moving, upsample, filt, window, max_shift)
    if window is None or not np.any(np.abs(first.shift) > 1.0 / upsample):
        return first
    undone = fourier_shift(np.asarray(moving, dtype=np.float64), -first.shift)
    second = _register_once(reference, undone, upsample, filt, window, 2.0)
    return Registration(first.shift + second.shift, second.quality)


def _register_once(reference: np.ndarray, moving: np.ndarray, upsample: int,
                   filt: np.ndarray | None, window: np.ndarray | None,
                   max_shift: float | None) -> Registration:
    ref = np.asarray(reference, dtype=np.float64)
    mov = np.asarray(moving, dtype=np.float64)
    if window is not None:
        ref = (ref - ref.mean()) * window
        mov = (mov - mov.mean()) * window
    fr, fm = np.fft.fftn(ref), np.fft.fftn(mov)
    if filt is not None:
        fr, fm = fr * filt, fm * filt
    fr.flat[0] = fm.flat[0] = 0.0  # correlation of zero-mean images
    spectrum = np.conj(fr) * fm
    cc = np.fft.ifftn(spectrum).real
    if max_shift is not None:
        grids = np.meshgrid(*[np.fft.fftfreq(n) * n for n in cc.shape], indexing="ij", sparse=True)
        cc = np.where(sum(g**2 for g in grids) <= max_shift**2, cc, -np.inf)
    peak = np.array(np.unravel_index(int(np.argmax(cc)), cc.shape), dtype=float)
    shape = np.array(cc.shape)
    peak = np.where(peak > shape // 2, peak - shape, peak)
    # Refine on a (1.5 px)^d neighbourhood sampled every 1/upsample px.
    m = int(np.ceil(1.5 * upsample))
    offsets = (np.arange(m) - m // 2) / upsample
    grids = [p + offsets for p in peak]
    local = _evaluate(spectrum, grids)
    idx = np.unravel_index(int(np.argmax(local)), local.shape)
    shift = np.array([g[i] for g, i in zip(grids, idx, strict=True)])
    norm = np.sqrt(np.sum(np.abs(fr) ** 2) * np.sum(np.abs(fm) ** 2))
    quality = float(local[idx] / norm) if norm > 0 else 0.0  # Parseval: spectra carry the 1/N
    return Registration(shift, quality)


def fourier_shift(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Translate a (periodic) array by a subpixel shift via the Fourier shift theorem."""
    spec = np.fft.fftn(image)
    for axis, (n, s) in enumerate(zip(image.shape, np.atleast_1d(shift), strict=True)):
        phase = np.exp(-2j * np.pi * np.fft.fftfreq(n) * s)
        spec *= phase.reshape([-1 if a == axis else 1 for a in range(image.ndim)])
    return np.fft.ifftn(spec).real

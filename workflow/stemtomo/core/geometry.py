"""Coordinate conventions shared by every stage, and the in-plane misalignment model.

Conventions (all stages, all backends):
- Tilt series are (tilt, y, x); volumes are (z, y, x); z is the beam direction at 0° tilt.
- After alignment the tilt axis is the y axis through the image centre, centre = (n - 1) / 2.
- A specimen tilted by +θ projects the voxel at (z, x) (relative to the volume centre) onto the
  detector position u = x·cos θ + z·sin θ (relative to the detector centre).
- A raw (unaligned) image relates to its aligned image by r = R(φ)·(p + (0, δ)) + s, with r and p
  (y, x) positions relative to the image centre, φ the tilt-axis angle (the axis direction in the
  raw image is R(φ)·(1, 0) in (y, x), i.e. the image is rotated counter-clockwise by φ in (x, y)),
  δ the tilt-axis offset (px, perpendicular to the axis, in the aligned frame) and s the per-tilt
  shift (y, x) in raw pixels.
- Gauge: projections determine the per-tilt translations t = R(φ)⁻¹·s + (0, δ) only up to an object
  translation, i.e. up to a constant along y and a·cos θ + b·sin θ along x. stemtomo fixes this
  freedom once for all stages (simulated truth and alignment alike): the per-tilt shifts, in the
  axis frame, have zero mean along y and no constant, cos θ or sin θ component along x; the constant
  part is the axis offset δ. The reconstruction frame is then the object's own frame.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def centre(n: int) -> float:
    """Index of the centre of an axis of length n (pixel-centre convention)."""
    return (n - 1) / 2.0


def rotation_yx(angle_deg: float) -> np.ndarray:
    """2×2 matrix acting on (y, x) vectors: counter-clockwise rotation by angle in the (x, y) plane."""
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, s], [-s, c]])


def aligned_to_raw(points_yx: np.ndarray, axis_angle_deg: float, axis_offset_px: float,
                   shift_yx: tuple[float, float] | np.ndarray) -> np.ndarray:
    """Map (..., 2) aligned positions (relative to the centre) to raw detector positions."""
    p = np.asarray(points_yx, dtype=float) + np.array([0.0, axis_offset_px])
    return p @ rotation_yx(axis_angle_deg).T + np.asarray(shift_yx, dtype=float)


def raw_to_aligned(points_yx: np.ndarray, axis_angle_deg: float, axis_offset_px: float,
                   shift_yx: tuple[float, float] | np.ndarray) -> np.ndarray:
    """Inverse of :func:`aligned_to_raw`."""
    r = np.asarray(points_yx, dtype=float) - np.asarray(shift_yx, dtype=float)
    return r @ rotation_yx(-axis_angle_deg).T - np.array([0.0, axis_offset_px])


def gauge_fix(angles_deg: np.ndarray, translations_yx: np.ndarray) -> tuple[float, np.ndarray]:
    """Split axis-frame per-tilt translations (n, 2) into the axis offset and gauge-fixed shifts.

    Returns (δ, shifts) with shifts[:, 0] of zero mean and shifts[:, 1] orthogonal to 1, cos θ and
    sin θ; δ is the coefficient of the constant (the cos θ and sin θ parts are an object
    translation and are dropped). See the module docstring.
    """
    t = np.asarray(translations_yx, dtype=float)
    th = np.deg2rad(np.asarray(angles_deg, dtype=float))
    basis = np.stack([np.ones_like(th), np.cos(th), np.sin(th)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, t[:, 1], rcond=None)
    shifts = np.stack([t[:, 0] - t[:, 0].mean(), t[:, 1] - basis @ coef], axis=1)
    return float(coef[0]), shifts


def axis_frame(shifts_yx: np.ndarray, axis_angle_deg: float) -> np.ndarray:
    """Raw-frame shifts (n, 2) → the same translations in the axis frame (R(φ)⁻¹·s)."""
    return np.asarray(shifts_yx, dtype=float) @ rotation_yx(axis_angle_deg)


def raw_frame(translations_yx: np.ndarray, axis_angle_deg: float) -> np.ndarray:
    """Inverse of :func:`axis_frame`."""
    return np.asarray(translations_yx, dtype=float) @ rotation_yx(axis_angle_deg).T


def _warp(image: np.ndarray, matrix: np.ndarray, offset: np.ndarray, order: int,
          cval: float) -> np.ndarray:
    return ndimage.affine_transform(image, matrix, offset=offset, order=order, cval=cval,
                                    mode="constant", prefilter=order > 1)


def raw_from_aligned(image: np.ndarray, axis_angle_deg: float, axis_offset_px: float,
                     shift_yx: tuple[float, float] | np.ndarray, order: int = 1,
                     cval: float = 0.0) -> np.ndarray:
    """Resample an aligned image into the raw frame (the forward misalignment model)."""
    c = np.array([centre(image.shape[0]), centre(image.shape[1])])
    rinv = rotation_yx(-axis_angle_deg)
    offset = c - rinv @ (c + np.asarray(shift_yx, dtype=float)) - np.array([0.0, axis_offset_px])
    return _warp(image, rinv, offset, order, cval)


def aligned_from_raw(image: np.ndarray, axis_angle_deg: float, axis_offset_px: float,
                     shift_yx: tuple[float, float] | np.ndarray, order: int = 1,
                     cval: float = 0.0) -> np.ndarray:
    """Resample a raw image into the aligned frame (tilt axis vertical and centred)."""
    c = np.array([centre(image.shape[0]), centre(image.shape[1])])
    rot = rotation_yx(axis_angle_deg)
    offset = c - rot @ c + rot @ np.array([0.0, axis_offset_px]) + np.asarray(shift_yx, dtype=float)
    return _warp(image, rot, offset, order, cval)


def bin_mean(array: np.ndarray, factor: int, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """Average non-overlapping blocks of `factor` samples along `axes` (all by default), e.g. the
    y and x axes of a (tilt, y, x) stack; trailing remainders are cropped."""
    if factor == 1:
        return array
    axes = tuple(range(array.ndim)) if axes is None else tuple(a % array.ndim for a in axes)
    shape, index, reduce = [], [], []
    for a, s in enumerate(array.shape):
        if a in axes:
            shape += [s // factor, factor]
            index.append(slice(0, s // factor * factor))
            reduce.append(len(shape) - 1)
        else:
            shape.append(s)
            index.append(slice(None))
    return array[tuple(index)].reshape(shape).mean(axis=tuple(reduce))

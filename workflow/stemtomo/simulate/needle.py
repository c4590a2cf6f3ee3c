"""A layered needle along the tilt axis, larger than the field of view: the awkward specimen of
on-axis tomography (a FIB-milled tip, an atom-probe-like needle on an on-axis holder).

A cone with a rounded tip, its long axis the tilt axis (y in the aligned frame), its shank running
out of the field on one side; a multilayer (thin Pt layers in γ-Al2O3) along its length, the
layers slightly inclined; a slightly elliptical cross-section. It is nearly rotationally
symmetric about the tilt axis, so every projection looks almost the same and the common line is
nearly uninformative; being truncated by the field, its visible part changes with the shifts.

The material map is built on a canvas longer than the field along y (projections are misaligned
on that canvas and then cropped, so the object really continues beyond the image) and only as
wide in x and z as the needle needs.
"""

from __future__ import annotations

import numpy as np

from ..core.labels import ALUMINA, PT
from .settings import NeedleSettings


def needle_material(shape: tuple[int, int, int], field: int, voxel_nm: float, needle: NeedleSettings,
                    rng: np.random.Generator) -> np.ndarray:
    """uint8 (z, y, x) material map of the needle on a canvas of `shape` (fine voxels); `field`
    is the detector field of view in fine px (the tip and radii are fractions of it)."""
    nz, ny, nx = shape
    z = (np.arange(nz) - (nz - 1) / 2)[:, None, None]
    y = (np.arange(ny) - (ny - 1) / 2)[None, :, None]
    x = (np.arange(nx) - (nx - 1) / 2)[None, None, :]
    half = field / 2
    y_tip = -needle.tip_position * half
    r_tip = needle.tip_radius * field
    slope = (needle.radius * field - r_tip) / (half - y_tip)  # radius reaches `radius` at the edge
    # Elliptical cross-section, its major axis in a random direction.
    rot = rng.uniform(0, np.pi)
    e = needle.ellipticity
    u = (x * np.cos(rot) + z * np.sin(rot)) / (1 + e)
    v = (-x * np.sin(rot) + z * np.cos(rot)) / (1 - e)
    rho = np.sqrt(u**2 + v**2)
    # Distance from the cone's axis line to the surface; the tip is a sphere of radius r_tip.
    cone = (y >= y_tip) & (rho <= r_tip + (y - y_tip) * slope)
    cap = (y < y_tip) & (rho**2 + (y - y_tip) ** 2 <= r_tip**2)
    body = cone | cap
    # Layers: planes whose normal leans a few degrees from the axis, Pt for a fraction of each layer;
    # the rounded tip stays alumina.
    lean = np.deg2rad(rng.uniform(2.0, 5.0))
    azimuth = rng.uniform(0, 2 * np.pi)
    along = (y * np.cos(lean) + np.sin(lean) * (x * np.cos(azimuth) + z * np.sin(azimuth)))
    # Irregular thicknesses (0.6-1.4 × the period), as in a real stack, not a perfect superlattice.
    period = needle.layer_nm / voxel_nm
    count = int(np.ceil(2 * ny / (0.6 * period))) + 2
    starts = y_tip + period * rng.uniform() + np.cumsum(period * rng.uniform(0.6, 1.4, count))
    k = np.clip(np.searchsorted(starts, along) - 1, 0, count - 2)
    layers = (along >= starts[0]) & (along - starts[k] < needle.pt_fraction * (starts[k + 1] - starts[k]))
    material = np.zeros(shape, np.uint8)
    material[body] = ALUMINA
    material[body & layers] = PT
    return material


def canvas_size(field: int, reach: float) -> int:
    """Edge of the square projection canvas (fine px) that covers the raw field of view after
    rotation (√2 for the corners) and displacement by up to `reach` px; same parity as `field`, so
    cropping the field keeps the centre."""
    n = int(np.ceil(field * np.sqrt(2) + 2 * reach)) + 4
    return n + (n - field) % 2


def needle_width(field: int, canvas: int, needle: NeedleSettings) -> int:
    """x and z extent (fine voxels) that holds the needle's widest cross-section on the canvas,
    at most the field, same parity as the field."""
    half = field / 2
    y_tip = -needle.tip_position * half
    r_tip = needle.tip_radius * field
    slope = (needle.radius * field - r_tip) / (half - y_tip)
    r_max = (r_tip + (canvas / 2 - y_tip) * slope) * (1 + needle.ellipticity)
    n = min(field, int(np.ceil(2 * r_max)) + 6)
    return n + (field - n) % 2

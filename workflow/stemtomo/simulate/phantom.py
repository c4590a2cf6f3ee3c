"""A synthetic Pt/γ-Al2O3 catalyst: a porous aggregate of platelet and rod crystallites with a rough
surface, decorated with sparse Pt nanoparticles sitting on that surface.

The aggregate grows by attaching each new crystallite to a random earlier one (a ballistic-style
aggregation, as catalyst supports are agglomerates of primary crystallites); crystallites are
superellipsoids (rounded boxes for platelets, cigar shapes for rods) in random orientations. The
space between crystallites gives the inter-particle porosity; small spherical mesopores are carved
into the solid; a smooth random field perturbs the surface. Pt particles (log-normal diameters)
are seeded on surface voxels and partly embedded along the local surface normal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from ..core.labels import ALUMINA, BACKGROUND, CLASS_NAMES, PT
from .settings import PtSettings, SupportSettings


@dataclass
class Crystallite:
    kind: str                    # "platelet" or "rod"
    centre_vox: np.ndarray       # (z, y, x) on the fine grid
    half_axes_vox: np.ndarray    # along the crystallite's own axes
    exponent: float              # superellipsoid exponent (2 = ellipsoid, large = box)
    rotation: np.ndarray         # 3×3, crystallite axes → (z, y, x)

    @property
    def reach(self) -> float:
        return float(self.half_axes_vox.max())


@dataclass
class Phantom:
    material: np.ndarray                       # uint8 (z, y, x): 0 background, 1 alumina, 2 Pt
    voxel_nm: float
    crystallites: list[Crystallite] = field(default_factory=list)
    particles: list[dict] = field(default_factory=list)  # centre_zyx_nm, diameter_nm


def _box(centre: np.ndarray, radius: float, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    lo = np.maximum(np.floor(centre - radius).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radius).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def _local_coords(box: tuple[slice, ...], centre: np.ndarray) -> list[np.ndarray]:
    return [np.arange(s.start, s.stop, dtype=np.float32) - np.float32(c)
            for s, c in zip(box, centre, strict=True)]


def _random_crystallite(rng: np.random.Generator, support: SupportSettings, voxel_nm: float) -> Crystallite:
    if rng.random() < support.platelet_fraction:
        length = rng.uniform(*support.platelet_length_nm)
        width = length * rng.uniform(0.55, 1.0)
        thick = rng.uniform(*support.platelet_thickness_nm)
        axes, kind, exponent = np.array([length, width, thick]) / 2, "platelet", 4.0
    else:
        length = rng.uniform(*support.rod_length_nm)
        diam = rng.uniform(*support.rod_diameter_nm)
        axes, kind, exponent = np.array([length, diam, diam * rng.uniform(0.8, 1.0)]) / 2, "rod", 2.5
    rot = Rotation.random(rng=rng).as_matrix()
    return Crystallite(kind, np.zeros(3), axes / voxel_nm, exponent, rot)


def _grow_aggregate(rng: np.random.Generator, n: int, support: SupportSettings,
                    voxel_nm: float) -> list[Crystallite]:
    c0 = centre_vec(n)
    # Envelope (z, y, x) radii: catalyst aggregates on a support film are flatter along the beam.
    env = np.array([support.flatness, 1.0, 1.0]) * support.extent * n / 2
    first = _random_crystallite(rng, support, voxel_nm)
    first.centre_vox = c0.copy()
    crystals = [first]
    for _ in range(support.crystallites - 1):
        for _attempt in range(200):
            new = _random_crystallite(rng, support, voxel_nm)
            parent = crystals[rng.integers(len(crystals))]
            direction = rng.standard_normal(3) * np.array([support.flatness, 1.0, 1.0])
            direction /= np.linalg.norm(direction)
            dist = (parent.reach + new.reach) * rng.uniform(0.25, 0.5)
            cand = parent.centre_vox + direction * dist
            if np.sum(((cand - c0) / env) ** 2) <= 1.0:
                new.centre_vox = cand
                crystals.append(new)
                break
    return crystals


def centre_vec(n: int) -> np.ndarray:
    return np.full(3, (n - 1) / 2.0)


def _rasterise_support(crystals: list[Crystallite], n: int, rng: np.random.Generator,
                       support: SupportSettings, voxel_nm: float, progress: bool) -> np.ndarray:
    shape = (n, n, n)
    level = np.full(shape, 4.0, dtype=np.float32)  # normalised "radius": < 1 inside a crystallite
    for cr in tqdm(crystals, desc="crystallites", unit="crystal", disable=not progress):
        box = _box(cr.centre_vox, cr.reach + 2, shape)
        if box is None:
            continue
        z, y, x = np.meshgrid(*_local_coords(box, cr.centre_vox), indexing="ij")
        # Coordinates in the crystallite frame: rows of rotation^T applied to (z, y, x).
        r = cr.rotation.astype(np.float32)
        q = np.zeros(z.shape, dtype=np.float32)
        for k in range(3):
            comp = r[0, k] * z + r[1, k] * y + r[2, k] * x
            q += np.abs(comp / np.float32(cr.half_axes_vox[k])) ** cr.exponent
        q **= 1.0 / cr.exponent
        np.minimum(level[box], q, out=level[box])
    # Rough surface: a smooth random field perturbs the level set before thresholding.
    sigma = max(support.roughness_nm / voxel_nm, 0.5)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    noise *= np.float32(support.roughness / max(float(noise.std()), 1e-12))
    solid = (level + noise) < 1.0
    # Mesopores: spheres carved into the solid until the requested porosity is reached.
    target = support.porosity * solid.sum()
    carved, solid_idx = 0, np.flatnonzero(solid)
    attempts = 0
    while carved < target and solid_idx.size and attempts < 10000:
        attempts += 1
        c = np.array(np.unravel_index(rng.choice(solid_idx), shape), dtype=float)
        rad = rng.uniform(*support.pore_diameter_nm) / 2 / voxel_nm
        box = _box(c, rad, shape)
        z, y, x = np.meshgrid(*_local_coords(box, c), indexing="ij")
        ball = (z * z + y * y + x * x) <= rad * rad
        carved += int(np.count_nonzero(solid[box] & ball))
        solid[box][ball] = False
    # One aggregate: drop fragments that pores or roughness cut loose.
    lab, count = ndimage.label(solid)
    if count > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        solid = lab == sizes.argmax()
    return solid


def _decorate_with_pt(material: np.ndarray, rng: np.random.Generator, pt: PtSettings,
                      voxel_nm: float) -> list[dict]:
    solid = material == ALUMINA
    shape = material.shape
    surface_idx = np.flatnonzero(solid & ~ndimage.binary_erosion(solid))
    smooth = ndimage.gaussian_filter(solid.astype(np.float32), 1.5)
    target = pt.volume_fraction * material.size
    mu, sig = np.log(pt.diameter_nm.median), pt.diameter_nm.sigma
    dmin, dmax = pt.diameter_nm.min, pt.diameter_nm.max
    gap = pt.min_gap_nm / voxel_nm
    centres: list[np.ndarray] = []
    radii: list[float] = []
    particles: list[dict] = []
    n_pt, attempts = 0, 0
    while n_pt < target and attempts < 20000 and surface_idx.size:
        attempts += 1
        d_nm = float(np.clip(rng.lognormal(mu, sig), dmin, dmax))
        rad = d_nm / 2 / voxel_nm
        p = np.array(np.unravel_index(rng.choice(surface_idx), shape))
        lo, hi = np.maximum(p - 1, 0), np.minimum(p + 2, shape)
        sub = smooth[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        grad = np.array([np.diff(sub, axis=a).mean() for a in range(3)])
        if np.linalg.norm(grad) < 1e-6:
            continue
        normal = -grad / np.linalg.norm(grad)  # points out of the support
        c = p + normal * rad * (1.0 - pt.embed)
        if np.any(c - rad < 0) or np.any(c + rad > np.array(shape) - 1):
            continue
        if centres and np.any(np.linalg.norm(np.array(centres) - c, axis=1)
                              < np.array(radii) + rad + gap):
            continue
        box = _box(c, rad, shape)
        z, y, x = np.meshgrid(*_local_coords(box, c), indexing="ij")
        ball = (z * z + y * y + x * x) <= rad * rad
        region = material[box]
        n_pt += int(np.count_nonzero(ball & (region != PT)))
        region[ball] = PT
        centres.append(c)
        radii.append(rad)
        particles.append({"centre_zyx_nm": [round(float(v * voxel_nm), 4) for v in c],
                          "diameter_nm": round(d_nm, 4)})
    return particles


def build_catalyst(n: int, voxel_nm: float, support: SupportSettings, pt: PtSettings,
                   rng: np.random.Generator, progress: bool = False) -> Phantom:
    """Material map of a Pt/γ-Al2O3 catalyst on an n³ grid of voxel_nm voxels.

    `support` and `pt` are the `simulate.support` and `simulate.pt` config sections (see the schema).
    """
    crystals = _grow_aggregate(rng, n, support, voxel_nm)
    solid = _rasterise_support(crystals, n, rng, support, voxel_nm, progress)
    material = solid.astype(np.uint8)  # ALUMINA == 1
    particles = _decorate_with_pt(material, rng, pt, voxel_nm)
    return Phantom(material, voxel_nm, crystals, particles)


def downsample_labels(material: np.ndarray, factor: int) -> np.ndarray:
    """Majority label of each factor³ block; ties go to the rarer class (Pt, then alumina)."""
    if factor == 1:
        return material.copy()
    n = [s // factor for s in material.shape]
    blocks = material[: n[0] * factor, : n[1] * factor, : n[2] * factor].reshape(
        n[0], factor, n[1], factor, n[2], factor)
    counts = np.stack([(blocks == c).sum(axis=(1, 3, 5)) for c in (PT, ALUMINA, BACKGROUND)])
    return np.array([PT, ALUMINA, BACKGROUND], dtype=np.uint8)[counts.argmax(axis=0)]


def class_fractions(labels: np.ndarray) -> dict[str, float]:
    counts = np.bincount(labels.ravel(), minlength=3)
    return {CLASS_NAMES[c]: float(counts[c] / labels.size) for c in CLASS_NAMES}

"""Training patches and whole validation slices from a reconstruction and (partial) labels, with
spatially disjoint splits.

Slices are x-y planes (volume[z]), as microscopists annotate them. Training patches and the
validation slices come from disjoint z-slabs of the annotated slices (never from the same slice),
separated by a gap so that 2.5D context channels never reach across. A configurable fraction of the
training patches is centred on a Pt voxel, as nnU-Net oversamples foreground (Isensee et al., Nat.
Methods 2021), because Pt is ~0.3 % of the voxels. Validation keeps the annotated slices whole, so
it sees Pt at its true rate.

The input may be several volumes of one grid (sources: the reconstruction and its denoised form,
denoise.input both), each normalised on its own and stacked source by source as channels (each
with its 2.5D context), as segmentation stacks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.annotations import values_problem
from ..core.errors import InputError
from ..core.intensity import Normalisation, source_stack
from ..core.labels import IGNORE, PT, class_statistics, value_counts
from .settings import AnnotationNoise, PatchSettings


@dataclass
class PatchSet:
    images: np.ndarray   # (n, channels, p, p) float32, normalised (whole slices: p = y, x sizes)
    labels: np.ndarray   # (n, p, p) uint8, IGNORE where unlabelled
    slices: np.ndarray   # z index of each patch
    centres: np.ndarray  # (n, 2) y, x of each patch centre
    pt_centred: np.ndarray  # bool: drawn as a Pt-centred patch


def as_sources(volume: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """The input's volumes: one (z, y, x) volume, or several (a list, or a (sources, z, y, x)
    array) of one shape."""
    sources = [volume] if isinstance(volume, np.ndarray) and volume.ndim == 3 else list(volume)
    if not sources or any(v.ndim != 3 or v.shape != sources[0].shape for v in sources):
        raise ValueError(f"input volumes of shapes {[v.shape for v in sources]}: need one or more "
                         "(z, y, x) volumes of one shape")
    return sources


def check_labels(volume: np.ndarray, labels: np.ndarray, source: str) -> None:
    if labels.shape != volume.shape:
        raise InputError(source, f"labels have shape {labels.shape} but the volume {volume.shape}",
                         "annotate the reconstruction itself (same shape, (z, y, x))")
    problem = values_problem(value_counts(labels), need_pt=False)  # Pt: see extract
    if problem:
        raise InputError(source, *problem)


def simulate_annotation(labels: np.ndarray, slices: int, noise: AnnotationNoise | None = None,
                        voxel_nm: float = 1.0, seed: int = 0) -> np.ndarray:
    """Keep `slices` evenly spaced z-slices through the object, as a person would annotate them;
    everything else becomes IGNORE. With `noise`, the kept slices get a person's errors: small Pt
    particles missed (`missed_pt_fraction` of those under `missed_pt_diameter_nm`) and every
    boundary displaced by a smooth random field of `jitter_px` RMS."""
    occupied = np.flatnonzero((labels > 0).any(axis=(1, 2)))
    lo, hi = (occupied[0], occupied[-1]) if occupied.size else (0, labels.shape[0] - 1)
    keep = np.unique(np.linspace(lo, hi, slices).round().astype(int))
    out = np.full_like(labels, IGNORE)
    out[keep] = labels[keep]
    if noise is not None:
        rng = np.random.default_rng([seed, 17])  # its own stream: patch sampling is unchanged
        missed = _missed_particles(labels, noise, voxel_nm, rng)
        for z in keep:
            out[z] = _jitter(_fill_missed(out[z], missed[z]), noise.jitter_px,
                             noise.jitter_scale_px, rng)
    return out


def _missed_particles(labels: np.ndarray, noise: AnnotationNoise, voxel_nm: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Voxels of the Pt particles (3D, 6-connected) a person overlooks: each particle smaller
    than `missed_pt_diameter_nm` with probability `missed_pt_fraction`."""
    if noise.missed_pt_fraction <= 0 or noise.missed_pt_diameter_nm <= 0:
        return np.zeros(labels.shape, bool)
    ids, n = ndimage.label(labels == PT, structure=ndimage.generate_binary_structure(3, 1))
    volume = np.bincount(ids.ravel(), minlength=n + 1)[1:] * voxel_nm**3
    diameter = (6 * volume / np.pi) ** (1 / 3)
    lost = (diameter < noise.missed_pt_diameter_nm) & (rng.random(n) < noise.missed_pt_fraction)
    return np.concatenate([[False], lost])[ids]


def _fill_missed(label_slice: np.ndarray, missed: np.ndarray) -> np.ndarray:
    """A slice with the missed Pt pixels given the label of their nearest other pixel (the
    support they sit on or the vacuum around them)."""
    if not missed.any():
        return label_slice
    pt = label_slice == PT
    _, (iy, ix) = ndimage.distance_transform_edt(pt, return_indices=True)
    out = label_slice.copy()
    out[missed] = label_slice[iy[missed], ix[missed]]
    return out


def _jitter(label_slice: np.ndarray, rms_px: float, scale_px: float,
            rng: np.random.Generator) -> np.ndarray:
    """Labels carried by a smooth random displacement field of `rms_px` RMS per axis
    (correlation length `scale_px`), as a hand-drawn outline wanders: a boundary moves along its
    normal by `rms_px` RMS, a small particle shifts a little as a whole. A warp keeps each
    object's area on average (nearest-neighbour sampling of a shifted shape is unbiased), where
    perturbing each class's signed distance grew particles of 2-6 px by 12-25 % in area."""
    if rms_px <= 0:
        return label_slice
    grid = np.indices(label_slice.shape, dtype=float)
    for axis in range(2):
        field = ndimage.gaussian_filter(rng.standard_normal(label_slice.shape), scale_px)
        grid[axis] += field * rms_px / max(float(np.sqrt(np.mean(field**2))), 1e-12)
    return ndimage.map_coordinates(label_slice, grid, order=0, mode="nearest")


def split_slices(annotated: np.ndarray, val_fraction: float, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Annotated z-slices → (train, val): validation is one contiguous block in the middle of the
    annotated range, and train slices closer than `gap` to it are dropped."""
    z = np.sort(annotated)
    if len(z) < 2:
        raise InputError("patches", f"only {len(z)} annotated slice(s)",
                         "annotate at least two slices (one for training, one for validation)")
    n_val = max(1, int(round(val_fraction * len(z))))
    start = (len(z) - n_val) // 2
    val = z[start:start + n_val]
    rest = np.concatenate([z[:start], z[start + n_val:]])
    train = rest[(rest < val[0] - gap) | (rest > val[-1] + gap)]
    if train.size == 0:
        raise InputError("patches.val_fraction", "no training slice is left after the split",
                         "annotate more slices or lower val_fraction / context")
    return train, val


def sample(volume: np.ndarray, labels: np.ndarray, slices: np.ndarray, count: int, size: int,
           pt_fraction: float, context: int, rng: np.random.Generator) -> PatchSet:
    """`count` patches of size×size from the given z-slices of a (z, y, x) volume or a
    (sources, z, y, x) stack; `context` neighbours on each side become extra channels (2.5D),
    source after source. Each centre is a uniformly drawn labelled pixel of a uniformly drawn
    slice, or, for a `pt_fraction` of the patches, a Pt pixel of a slice that has Pt (the labels
    and `rng` alone decide where: every source gets the same patches)."""
    stack = source_stack(volume)
    n_src, nz = stack.shape[:2]
    half = size // 2
    vol_p = np.pad(stack, ((0, 0), (0, 0), (half, half), (half, half)), mode="reflect")
    lab_p = np.pad(labels, ((0, 0), (half, half), (half, half)), constant_values=IGNORE)
    labelled = {z: np.argwhere(labels[z] != IGNORE) for z in slices}
    pt = {z: np.argwhere(labels[z] == PT) for z in slices}
    images = np.empty((count, n_src * (2 * context + 1), size, size), np.float32)
    out_labels = np.empty((count, size, size), np.uint8)
    zs = np.empty(count, int)
    centres = np.empty((count, 2), int)
    pt_centred = np.zeros(count, bool)
    usable = [z for z in slices if len(labelled[z])]
    with_pt = [z for z in usable if len(pt[z])]
    for i in range(count):
        want_pt = with_pt and rng.random() < pt_fraction
        z = with_pt[rng.integers(len(with_pt))] if want_pt else usable[rng.integers(len(usable))]
        pool = pt[z] if want_pt else labelled[z]
        cy, cx = pool[rng.integers(len(pool))]
        chans = np.clip(np.arange(z - context, z + context + 1), 0, nz - 1)
        images[i] = vol_p[:, chans, cy:cy + size, cx:cx + size].reshape(-1, size, size)
        out_labels[i] = lab_p[z, cy:cy + size, cx:cx + size]
        zs[i], centres[i], pt_centred[i] = z, (cy, cx), bool(want_pt)
    return PatchSet(images, out_labels, zs, centres, pt_centred)


def whole_slices(volume: np.ndarray, labels: np.ndarray, slices: np.ndarray,
                 context: int) -> PatchSet:
    """The given z-slices whole, each with its 2.5D context channels (clipped at the volume's
    ends, as segmentation clips them), source after source for a (sources, z, y, x) stack."""
    stack = source_stack(volume)
    n_src, nz, ny, nx = stack.shape
    chans = np.clip(slices[:, None] + np.arange(-context, context + 1)[None, :], 0, nz - 1)
    n = len(slices)
    images = stack[:, chans].transpose(1, 0, 2, 3, 4).reshape(n, -1, ny, nx)
    return PatchSet(np.ascontiguousarray(images), labels[slices].copy(),
                    np.asarray(slices), np.tile([ny // 2, nx // 2], (n, 1)), np.zeros(n, bool))


def extract(volume: np.ndarray | Sequence[np.ndarray], labels: np.ndarray,
            settings: PatchSettings, source: str = "labels",
            split: tuple[list[int], list[int]] | None = None) -> tuple[PatchSet, PatchSet, dict]:
    """Training patches, the whole validation slices, and their record, from one volume or from
    several sources (as_sources), each normalised on its own. `split` gives the training and
    validation slices (a 2D dataset's own parts); else validation is the middle block of the
    annotated slices (split_slices)."""
    sources = as_sources(volume)
    volume = sources[0]
    check_labels(volume, labels, source)
    labels = labels.astype(np.uint8, copy=False)  # values checked: 0, 1, 2 or 255
    annotated = np.flatnonzero((labels != IGNORE).any(axis=(1, 2)))
    if split is None:
        train_z, val_z = split_slices(annotated, settings.val_fraction,
                                      gap=2 * settings.context + 1)
    else:
        train_z, val_z = (np.intersect1d(np.asarray(part, int), annotated) for part in split)
    if not (labels == PT).any():  # none at all: not a matter of which slices validate
        raise InputError(source, *values_problem(value_counts(labels)))
    scales = [Normalisation.of(v, settings.normalisation) for v in sources]
    norm = source_stack(scales[0].apply(volume)) if len(sources) == 1 else \
        np.stack([s.apply(v) for s, v in zip(scales, sources, strict=True)])
    rng = np.random.default_rng(settings.seed)
    size, ctx, frac = settings.patch_size, settings.context, settings.pt_fraction
    if size > min(volume.shape[1:]):
        raise InputError("patches.patch_size", f"{size} px patches exceed the {volume.shape[1:]} slices",
                         "use a patch size no larger than the slices")
    for part, zs in (("training", train_z), ("validation", val_z)):
        if not (labels[zs] == PT).any():  # Pt is what training learns and early stopping watches
            raise InputError(source, f"the {part} slices {zs.tolist()} hold no Pt voxels",
                             "label Pt in those slices (validation is the middle block of the "
                             "annotated slices) or change patches.val_fraction")
    train = sample(norm, labels, train_z, settings.train_patches, size, frac, ctx, rng)
    val = whole_slices(norm, labels, val_z, ctx)
    record = {
        "train_slices": train_z.tolist(), "val_slices": val_z.tolist(),
        "annotated_slices": annotated.tolist(), "patch_size": size,
        "channels": len(sources) * (2 * ctx + 1), "sources": len(sources),
        # one scaling per source; "normalisation" alone: the first's (as before sources)
        "normalisation": scales[0].as_record(),
        "source_normalisations": [s.as_record() for s in scales], "pt_fraction": frac,
        "train": {"patches": len(train.labels), "pt_centred": int(train.pt_centred.sum()),
                  **class_statistics(train.labels)},
        "val": {"slices": len(val.labels), **class_statistics(val.labels)},
        "annotated_voxels": class_statistics(labels[annotated]),
    }
    return train, val, record

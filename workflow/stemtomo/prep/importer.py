"""The import stage: any supported tilt-series file → float32 (tilt, y, x) sorted by angle.

Resolves angles and pixel size (config first, then the file's own metadata), repairs int16 data that
really is wrapped uint16, excludes tilts, crops and bins, subtracts the vacuum level and equalises
the integrated intensity across tilts. Every problem with the input raises InputError naming the
file or config key and the fix; nothing is written by this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError
from ..core.geometry import bin_mean
from ..core.intensity import vacuum_level
from ..core.readers import RawSeries, read_angle_file
from .settings import ImportSettings


@dataclass
class Imported:
    stack: np.ndarray        # float32 (tilt, y, x), ascending angles
    angles: np.ndarray       # degrees
    pixel_size_nm: float
    meta: dict


def resolve_angles(spec: object, n_images: int, raw: RawSeries, key: str) -> tuple[np.ndarray, str]:
    """Angles from the config (list, {start, step[, stop]} or a file path), else from the file."""
    if spec is None:
        if raw.angles is None:
            raise InputError(raw.source, "the file carries no tilt angles",
                             f"set `{key}` to a .rawtlt/.tlt file, a list, or {{start, step}}")
        return np.asarray(raw.angles, dtype=float), "file header"
    if isinstance(spec, str):
        return read_angle_file(spec), spec
    if isinstance(spec, dict):
        count = n_images
        if spec.get("stop") is not None:
            count = int(round((spec["stop"] - spec["start"]) / spec["step"])) + 1
        return spec["start"] + spec["step"] * np.arange(count, dtype=float), f"config {key}"
    return np.asarray(spec, dtype=float), f"config {key}"


def _int16_to_float(data: np.ndarray, mode: str, meta: dict, key: str) -> np.ndarray:
    """Undo uint16 counts stored as int16 (values above 32767 wrapped to negatives)."""
    if data.dtype != np.int16 or mode == "signed" or data.min() >= 0:
        meta["int16"] = "not applicable" if data.dtype != np.int16 else "signed"
        return data.astype(np.float32)
    if mode == "auto":
        mode = _detect_wrapping(data, meta, key)
    meta["int16"] = mode
    if mode == "wrapped":
        return data.view(np.uint16).astype(np.float32)
    return data.astype(np.float32)


def _detect_wrapping(data: np.ndarray, meta: dict, key: str) -> str:
    """'wrapped' or 'signed', by a vote of neighbouring pixels of opposite sign.

    Where counts cross 32767 → 32768 between two neighbours, int16 storage turns the small step
    into a jump of ~65536 − step (> 32767 as stored); values of real signed data cross zero in
    small steps. Each sign change between horizontal or vertical neighbours votes, so the verdict
    does not depend on how few pixels are bright (a mean over all pixels does: 2 % wrapped pixels
    were called signed)."""
    negative = np.flatnonzero((data < 0).any(axis=(1, 2)))
    big = small = 0
    for i in negative[np.linspace(0, len(negative) - 1, min(8, len(negative))).astype(int)]:
        image = data[i].astype(np.int32)
        for a, b in ((image[1:], image[:-1]), (image[:, 1:], image[:, :-1])):
            crossing = (a < 0) != (b < 0)
            jump = np.abs(a[crossing] - b[crossing])
            big += int((jump > 32767).sum())
            small += int((jump <= 32767).sum())
    total = big + small
    # No sign change at all (whole images negative): both readings are equally smooth, so
    # nothing shows a wrap and the values stay as stored.
    share = big / total if total else 0.0
    verdict = "wrapped" if share >= 0.75 else "signed" if share <= 0.25 else ""
    meta["notes"].append(f"int16 auto: {big} of {total} sign changes between neighbouring pixels "
                         f"are jumps above 32767 → {verdict or 'undecided'}")
    if not verdict:
        raise InputError(f"{key}.int16", f"int16 data: cannot tell signed values from wrapped "
                         f"uint16 counts ({big} of {total} sign changes between neighbouring "
                         "pixels jump by more than 32767)",
                         f"set `{key}.int16: wrapped` if the detector counts exceed 32767 (bright "
                         "areas read as negative), or `signed` if the values really are signed")
    return verdict


def _refuse_radians(kept: np.ndarray, source: str, key: str) -> None:
    """With import.angles_unit: auto, refuse a series that only radians explain: more than 10
    tilts within ±5°, or any series within ±π/2 (the whole range radians can have)."""
    if not kept.size or not np.all(np.isfinite(kept)) or np.unique(kept).size < kept.size:
        return  # NaN or repeated angles: _check_angles names those
    extent = float(np.max(np.abs(kept)))
    if (extent < 5 and kept.size > 10) or extent <= np.pi / 2:
        step = float(np.median(np.abs(np.diff(np.sort(kept))))) if kept.size > 1 else 0.0
        raise InputError(source, f"the {kept.size} tilt angles run from {kept.min():g} to "
                         f"{kept.max():g}: as degrees that is a ±{extent:.3g}° series with "
                         f"{step:.3g}° steps, almost certainly radians (±{np.degrees(extent):.3g}° "
                         f"with {np.degrees(step):.3g}° steps)",
                         f"if they are radians, set `{key}.angles_unit: radians` (they are "
                         f"converted to degrees); if the range really is this narrow, set "
                         f"`{key}.angles_unit: degrees`")


def _check_angles(all_angles: np.ndarray, keep: np.ndarray, source: str, allow_unsorted: bool,
                  key: str, unit: str = "auto") -> None:
    """Check the angles of the kept images (so excluding a bad image is a fix); messages name
    images by their index in the file."""
    index = np.flatnonzero(keep)
    angles = all_angles[index]
    if not np.all(np.isfinite(angles)):
        raise InputError(source, "angles contain NaN or Inf", "correct the angle list")
    bad = np.flatnonzero(np.abs(angles) > 90)
    if bad.size:
        if unit == "radians":
            fix = f"they were converted from radians (`{key}.angles_unit: radians`): if they " \
                "are degrees, remove that setting"
        else:
            fix = "angles are read in degrees: check that the angle list or file (its first " \
                "column) holds tilt angles, not indices or another quantity, or drop a corrupt " \
                f"entry's image with `{key}.exclude_indices`"
        more = f" (and {bad.size - 10} more)" if bad.size > 10 else ""
        raise InputError(source, f"angles beyond ±90°: {np.round(angles[bad[:10]], 4).tolist()} at "
                         f"image indices {index[bad[:10]].tolist()}{more}", fix)
    uniq, counts = np.unique(np.round(angles, 3), return_counts=True)
    if np.any(counts > 1):
        dup = uniq[counts > 1].tolist()
        idx = [index[np.isclose(angles, d, atol=5e-4)].tolist() for d in dup]
        raise InputError(source, f"duplicate tilt angles {dup} at image indices {idx}",
                         f"drop the repeats with `{key}.exclude_indices` or correct the angles")
    d = np.diff(angles)
    if not (np.all(d > 0) or np.all(d < 0)) and not allow_unsorted:
        k = int(np.flatnonzero(np.sign(d) != np.sign(d[0]))[0]) + 1
        raise InputError(source, f"angles are not monotonic: image {index[k]} has {angles[k]:g}° "
                         f"after {angles[k - 1]:g}° (check that the angle file belongs to this "
                         "stack)",
                         f"if the stack is in acquisition order (e.g. dose-symmetric), set "
                         f"`{key}.allow_unsorted: true` to sort it")


def _crop(stack: np.ndarray, crop: dict | None, source: str, key: str) -> np.ndarray:
    if not crop:
        return stack
    (y0, y1), (x0, x1) = crop.get("y", [0, stack.shape[1]]), crop.get("x", [0, stack.shape[2]])
    if not (0 <= y0 < y1 <= stack.shape[1] and 0 <= x0 < x1 <= stack.shape[2]):
        raise InputError(key + ".crop", f"crop y={[y0, y1]} x={[x0, x1]} is outside the "
                         f"{stack.shape[1]}×{stack.shape[2]} images of {source}",
                         "give [start, stop) pixel ranges inside the image")
    return stack[:, y0:y1, x0:x1]


def import_tiltseries(raw: RawSeries, angles_spec: object, pixel_size_nm: float | None,
                      settings: ImportSettings, sample_key: str = "samples.<sample>") -> Imported:
    """Turn a raw stack into the pipeline's float32, angle-sorted, normalised tilt series.

    `sample_key` names the sample's config entry in messages (per-sample overrides go under
    `<sample_key>.import`).
    """
    key = f"{sample_key}.import"
    src = raw.source
    meta: dict = {"source": src, "input_shape": list(raw.data.shape),
                  "input_dtype": str(raw.data.dtype), "notes": list(raw.notes)}
    if raw.data.dtype.kind not in "uif":
        raise InputError(src, f"unsupported data type {raw.data.dtype}",
                         "export the stack as integers or real numbers")
    n = raw.data.shape[0]
    angles, angle_source = resolve_angles(angles_spec, n, raw, f"{sample_key}.angles")
    meta["angle_source"] = angle_source
    if len(angles) != n:
        raise InputError(src, f"{n} images but {len(angles)} angles (from {angle_source})",
                         "use the angle file that belongs to this stack, or fix the angle list")
    px = _pixel_size(raw, pixel_size_nm, sample_key, meta)
    if n < 3:
        raise InputError(src, f"the file holds only {n} image{'s' if n > 1 else ''} "
                         f"(shape {raw.data.shape}): a tilt series needs many (typically 40–150 "
                         "tilts)", "give the whole tilt series as one stack file (all tilts as "
                         "pages or sections), not a single image")
    if settings.angles_unit == "radians":
        angles = np.degrees(angles)
        meta["notes"].append(f"angles converted from radians ({key}.angles_unit)")
    keep, excluded = _exclusions(angles, settings, key)  # exclude_angles are in degrees
    if settings.angles_unit == "auto":
        _refuse_radians(angles[keep], angle_source, key)
    _check_angles(angles, keep, angle_source, settings.allow_unsorted, key, settings.angles_unit)
    idx = np.flatnonzero(keep)
    if idx.size < 3:
        raise InputError(key, f"only {idx.size} of {n} tilts left after excluding "
                         f"{sorted({e['index'] for e in excluded})}",
                         "exclude fewer tilts (exclude_indices / exclude_angles): a reconstruction "
                         "needs many")
    stack = _int16_to_float(raw.data[idx], settings.int16, meta, key)
    _check_images(stack, idx, src, key)
    order = np.argsort(angles[idx], kind="stable")
    stack, angles, idx = stack[order], angles[idx][order], idx[order]
    stack = bin_mean(_crop(stack, settings.crop, src, key), settings.binning, axes=(1, 2))
    px *= settings.binning
    stack = _levels(stack, settings, src, key, meta)
    meta.update({
        "output_shape": list(stack.shape), "pixel_size_nm": px, "binning": settings.binning,
        "crop": settings.crop, "background": settings.background,
        "normalize": settings.normalize, "file_indices": idx.tolist(),
        "excluded": excluded, "angle_range": [float(angles.min()), float(angles.max())],
    })
    return Imported(np.ascontiguousarray(stack, dtype=np.float32), angles, px, meta)


def _pixel_size(raw: RawSeries, pixel_size_nm: float | None, sample_key: str, meta: dict) -> float:
    """The config's pixel size, else the file's; the file's value is kept for the record."""
    if pixel_size_nm is None and raw.pixel_size_nm is None:
        raise InputError(raw.source, "no pixel size in the file",
                         f"set `{sample_key}.pixel_size_nm` in the config")
    px = float(pixel_size_nm if pixel_size_nm is not None else raw.pixel_size_nm)
    meta["pixel_size_source"] = "config" if pixel_size_nm is not None else "file header"
    if pixel_size_nm is not None and raw.pixel_size_nm and \
            abs(raw.pixel_size_nm - pixel_size_nm) > 0.01 * pixel_size_nm:
        meta["notes"].append(f"config pixel size {pixel_size_nm} nm overrides the file's "
                             f"{raw.pixel_size_nm:.4g} nm")
    return px


def _exclusions(angles: np.ndarray, settings: ImportSettings, key: str) -> tuple[np.ndarray, list]:
    """Images kept (file order) after exclude_indices and exclude_angles, and the record of each
    excluded one."""
    n = len(angles)
    keep = np.ones(n, dtype=bool)
    excluded = []
    for i in settings.exclude_indices:
        if not -n <= i < n:
            raise InputError(f"{key}.exclude_indices", f"index {i} is outside 0..{n - 1}",
                             "indices count images in file order from 0")
        keep[i] = False
        excluded.append({"index": i % n, "angle": float(angles[i]), "reason": "exclude_indices"})
    for a in settings.exclude_angles:
        hit = np.flatnonzero(np.isclose(angles, a, atol=0.05))
        if hit.size == 0:
            raise InputError(f"{key}.exclude_angles", f"no tilt at {a}° (angles run "
                             f"{angles.min():g}..{angles.max():g})", "list angles that exist")
        keep[hit] = False
        excluded += [{"index": int(i), "angle": float(angles[i]), "reason": "exclude_angles"}
                     for i in hit]
    return keep, excluded


def _check_images(stack: np.ndarray, idx: np.ndarray, src: str, key: str) -> None:
    """Every kept image finite and not constant."""
    finite = np.isfinite(stack).all(axis=(1, 2))
    if not finite.all():
        bad = idx[~finite].tolist()
        raise InputError(src, f"images {bad} contain NaN or Inf",
                         f"exclude them with `{key}.exclude_indices: {bad}`")
    flat = stack.reshape(len(idx), -1)
    constant = flat.max(axis=1) == flat.min(axis=1)
    if constant.all():
        values = np.unique(flat[:, 0])
        raise InputError(src, f"all {len(idx)} images are constant (every pixel "
                         f"{'= ' + format(values[0], 'g') if values.size == 1 else 'of an image the same'}):"
                         " the stack holds no image data",
                         "check that this is the right file and that its export kept the data "
                         "(bit depth, scaling: re-export from the original, e.g. as 32-bit)")
    if constant.sum() > len(idx) // 2:
        raise InputError(src, f"{int(constant.sum())} of {len(idx)} images are constant (blank "
                         f"frames): {idx[constant].tolist()}",
                         "most of the series is blank: check the acquisition or the export "
                         "before excluding that many tilts")
    if constant.any():
        bad = idx[constant].tolist()
        raise InputError(src, f"images {bad} are constant (blank frames)",
                         f"exclude them with `{key}.exclude_indices: {bad}`")


def _levels(stack: np.ndarray, settings: ImportSettings, src: str, key: str,
            meta: dict) -> np.ndarray:
    """Subtract each image's vacuum level and equalise the integrated intensity, as configured."""
    if settings.background == "auto":
        levels = np.array([vacuum_level(im) for im in stack])
        stack -= levels[:, None, None].astype(np.float32)
        meta["background_levels"] = levels.round(4).tolist()
    if settings.normalize == "total":
        # Parallel projections of an object inside the field of view all carry the same total
        # (mass conservation), so differences in the sum are beam-current fluctuations.
        totals = stack.sum(axis=(1, 2), dtype=np.float64)
        if np.any(totals <= 0):
            raise InputError(src, "an image has no signal above the vacuum level",
                             f"set `{key}.normalize: none` or exclude the empty tilts")
        factors = np.median(totals) / totals
        stack *= factors[:, None, None].astype(np.float32)
        meta["normalize_factors"] = factors.round(6).tolist()
    return stack

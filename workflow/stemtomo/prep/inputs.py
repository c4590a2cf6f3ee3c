"""Everything a sample brings that can be checked before any job runs: its annotations (a label
volume or a folder of per-slice masks, in its `label_values` encoding), its evaluation truth, its
existing reconstruction (`volume:`) or 2D dataset (`slices:`). Called from the workflow's
common.smk, so a wrong shape, an unknown value, an unpaired file or annotations without Pt stop
the run at once (naming the config key, the file, the problem and the fix), not after hours of
reconstruction.

The shape the annotations must have is the reconstruction's: read from a `volume:` file's header,
or derived from the tilt series' header and the import/reconstruct settings
(core.precheck.reconstruction_shape, which also says which setting gives each axis).
"""

from __future__ import annotations

from pathlib import Path

from ..core.annotations import STEMTOMO, Encoding, check_integer, mask_files, read_annotations, values_problem
from ..core.config import setting_key, stage_settings
from ..core.errors import ConfigError, InputError
from ..core.images import read_image
from ..core.precheck import VolumeShape, reconstruction_shape, shape_mismatch, value_counts_cached
from ..core.readers import read_header, read_shape
from ..core.samples import start_point, volume_shape
from ..simulate.acquisition import tilt_angles
from ..simulate.settings import TiltRange
from ..tomo.algorithms import split_tilts
from .slices import load_dataset


def mask_inputs(labels: str) -> list[str]:
    """The files a `labels:` entry consists of: the label volume, or every mask of the folder
    (so that adding or changing one slice's mask reruns what depends on the annotations)."""
    path = Path(labels)
    return [str(p) for p in mask_files(path).values()] if path.is_dir() else [labels]


def encoding_of(sample: dict, key: str) -> Encoding:
    return Encoding.from_config(sample.get("label_values"), f"config {key}.label_values")


def check_inputs(config: dict, workdir: str | Path = ".") -> None:
    """Raise ConfigError (the sample's key, then the file, the problem and the fix) for the first
    sample whose inputs cannot work."""
    workdir = Path(workdir)
    for name, sample in config["samples"].items():
        key = f"samples.{name}"
        kind = start_point(sample)
        if kind == "slices":
            _as_config_error(f"config {key}.slices", load_dataset, sample["slices"],
                             encoding_of(sample, key), f"config {key}.slices", workdir)
            continue
        check_denoise_splits(config, name, workdir)
        expected = expected_shape(config, name, workdir)
        for entry, encoding in (("labels", encoding_of(sample, key)), ("truth", STEMTOMO)):
            if entry in sample:
                _as_config_error(f"config {key}.{entry}", check_annotations,
                                 workdir / sample[entry], expected, encoding, workdir)


def _as_config_error(key: str, check, *args) -> None:
    try:
        check(*args)
    except ConfigError:
        raise
    except InputError as exc:
        raise ConfigError(key, f"{exc.source}: {exc.problem}", exc.fix) from None


def tilt_count(config: dict, sample: str, workdir: Path) -> tuple[int, str] | None:
    """The number of tilts the sample's series has at most, and where that comes from: its
    simulate.tilt range, or its file's header less import.exclude_indices (exclude_angles and the
    alignment's dropped frames can only lower it); None where neither tells."""
    s = config["samples"][sample]
    kind = start_point(s)
    if kind == "simulate" and (s.get("simulate") or {}).get("tilt"):
        n = len(tilt_angles(TiltRange.from_section(s["simulate"]["tilt"])))
        return n, f" (samples.{sample}.simulate.tilt)"
    if kind != "tiltseries":
        return None
    try:
        shape = read_shape(workdir / s["tiltseries"])
    except InputError:
        return None  # the import job says why
    dropped = {i for i in stage_settings(config, sample, "import")["exclude_indices"]
               if 0 <= i < shape[0]}
    return shape[0] - len(dropped), (f" (at most: the header of {s['tiltseries']}"
                                     + (f" less {len(dropped)} exclude_indices)" if dropped else ")"))


def check_denoise_splits(config: dict, sample: str, workdir: Path) -> None:
    """denoise.splits ≤ tilts / 4, before any job (else the first denoise_split job fails)."""
    denoise = stage_settings(config, sample, "denoise")
    if not denoise["enabled"]:
        return
    counted = tilt_count(config, sample, workdir)
    if counted is None:
        return
    key = setting_key(config, sample, "denoise", "splits")
    try:
        split_tilts(counted[0], denoise["splits"], key, counted[1])
    except InputError as exc:
        raise ConfigError(f"config {key}", exc.problem, exc.fix) from None


def expected_shape(config: dict, sample: str, workdir: Path) -> VolumeShape | None:
    """The (z, y, x) shape of the sample's volume and why, where the config and file headers
    tell it; None where the tilt series' header cannot be read (the import job then says why)."""
    s = config["samples"][sample]
    kind = start_point(s)
    if kind == "tiltseries":
        try:
            shape = read_shape(workdir / s["tiltseries"])
        except InputError:
            return None
        if len(shape) != 3:
            return None
        return reconstruction_shape(shape[1:], stage_settings(config, sample, "import"),
                                    stage_settings(config, sample, "reconstruct"),
                                    lambda stage, k: setting_key(config, sample, stage, k))
    zyx = volume_shape(config, sample, workdir)
    if kind == "volume":
        axes = s.get("volume_axes", "zyx")
        why = tuple(f"axis {a} of {s['volume']} (volume_axes: {axes})" for a in "zyx")
    else:
        why = ("reconstruct.height or simulate.size", "simulate.size", "simulate.size")
    return VolumeShape(zyx, why)  # type: ignore[arg-type]


def check_annotations(source: Path, expected: VolumeShape | None, encoding: Encoding,
                      workdir: Path) -> None:
    """Readable, every value in the encoding, something labelled, Pt somewhere and, where the
    volume's shape is known, the same shape (masks: in-plane shape and slice numbers)."""
    if source.is_dir():
        masks = mask_files(source)
        shape = expected.shape if expected else \
            (max(masks) + 1, *read_image(next(iter(masks.values()))).shape)
        read_annotations(source, shape, encoding)
        return
    shape, dtype = read_header(source)
    check_integer(dtype, source)
    if len(shape) != 3:
        raise InputError(source, f"labels must be one (z, y, x) volume, but the file holds "
                         f"{len(shape)}D data of shape {shape}",
                         "save the annotation as a 3D stack of the reconstruction's shape, or "
                         "give a folder of per-slice masks")
    if expected is not None and shape != expected.shape:
        problem, fix = shape_mismatch(source, shape, expected)
        raise InputError(source, problem.removeprefix(f"{source}: "), fix)
    problem = values_problem(value_counts_cached(source, workdir), encoding)
    if problem:
        raise InputError(source, *problem)

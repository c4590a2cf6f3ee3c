"""Readers for tilt-series files (TIFF, MRC/ST/ALI incl. FEI extended headers, NumPy) and angle files.

Each reader returns the raw data and whatever the file itself says about angles and pixel size;
deciding between file and config values is the import stage's job.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

TIFF_SUFFIXES = {".tif", ".tiff"}
MRC_SUFFIXES = {".mrc", ".st", ".ali", ".mrcs", ".preali", ".rec"}  # .rec: IMOD reconstructions
NPY_SUFFIXES = {".npy"}
SUPPORTED = sorted(TIFF_SUFFIXES | MRC_SUFFIXES | NPY_SUFFIXES)

# Length units in TIFF/ImageJ metadata → nm.
_UNITS_NM = {"nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "a": 0.1, "å": 0.1,
             "angstrom": 0.1, "\\u00c5": 0.1, "um": 1e3, "µm": 1e3, "micron": 1e3,
             "microns": 1e3, "\\u00b5m": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9}


@dataclass
class RawSeries:
    data: np.ndarray                    # as stored, (n, y, x)
    source: str
    angles: np.ndarray | None = None    # from the file's own metadata, in file order
    pixel_size_nm: float | None = None
    notes: list[str] = field(default_factory=list)


def read_tiltseries(path: str | Path) -> RawSeries:
    """Read a tilt-series file by its suffix; raise InputError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found",
                         "check the sample's `tiltseries:` path (relative to the working directory)")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        raw = _read_tiff(path)
    elif suffix in MRC_SUFFIXES:
        raw = _read_mrc(path)
    elif suffix in NPY_SUFFIXES:
        raw = _read_npy(path)
    else:
        raise InputError(path, f"unsupported file type {suffix!r}",
                         f"convert the stack to one of {', '.join(SUPPORTED)}")
    if raw.data.ndim != 3:
        raise InputError(path, f"expected a 3D stack (tilt, y, x) but the data are "
                         f"{raw.data.ndim}D with shape {raw.data.shape}",
                         "save all tilts in one stack file (a single image is not a tilt series)")
    return raw


def _read_tiff(path: Path) -> RawSeries:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            ij = tif.imagej_metadata or {}
            page = tif.pages[0]
            pixel = tiff_pixel_size(page, ij)
    except (tifffile.TiffFileError, ValueError, OSError, EOFError, IndexError) as exc:
        raise InputError(path, f"cannot read TIFF ({exc})",
                         "the file is corrupt or truncated: copy it again from the microscope PC"
                         ) from exc
    return RawSeries(np.asarray(data), str(path), None, pixel)


def tiff_pixel_size(page, ij: dict) -> float | None:
    """Pixel size (nm) from a TIFF page's resolution tags and ImageJ unit, else None."""
    unit = str(ij.get("unit", "")).strip().lower()
    if unit not in _UNITS_NM:
        return None  # pixels-per-inch or no unit at all: not a physical pixel size
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value
    if num == 0:
        return None
    return den / num * _UNITS_NM[unit]


def _read_npy(path: Path) -> RawSeries:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"cannot read NumPy file ({exc})",
                         "the file is corrupt or truncated, or not a plain array saved with np.save"
                         ) from exc
    return RawSeries(np.asarray(data), str(path))


def _read_mrc(path: Path) -> RawSeries:
    import mrcfile

    notes: list[str] = []
    try:
        # Permissive: FEI/Thermo files often have a wrong map ID or machine stamp.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mrc = mrcfile.open(path, mode="r", permissive=True)
        with mrc:
            if mrc.data is None:
                h = mrc.header
                raise InputError(path, f"the data block is missing or truncated (header: "
                                 f"{int(h.nx)}×{int(h.ny)}×{int(h.nz)}, mode {int(h.mode)}, "
                                 f"file size {path.stat().st_size} bytes)",
                                 "the transfer was probably interrupted: copy the file again")
            data = np.array(mrc.data)
            voxel = float(mrc.voxel_size.x)
            angles, ext_pixel = _fei_extended_header(mrc, notes)
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(path, f"cannot read MRC ({exc})",
                         "the file is corrupt or not an MRC file: check it opens in IMOD (header)"
                         ) from exc
    notes += [f"mrcfile: {w.message}" for w in caught]
    pixel = voxel / 10.0 if voxel > 0 else None  # header is in Å
    if ext_pixel is not None:
        if pixel is not None and abs(pixel - ext_pixel) > 0.01 * ext_pixel:
            notes.append(f"header pixel size {pixel:.4g} nm differs from the extended header "
                         f"{ext_pixel:.4g} nm; using the extended header")
        pixel = ext_pixel
    return RawSeries(data, str(path), angles, pixel, notes)


def _fei_extended_header(mrc, notes: list[str]) -> tuple[np.ndarray | None, float | None]:
    """Per-image tilt angles and pixel size (nm) from FEI1/FEI2 or legacy FEI extended headers."""
    h = mrc.header
    nz = int(h.nz)
    exttyp = bytes(h.exttyp)
    if exttyp in (b"FEI1", b"FEI2"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ext = mrc.indexed_extended_header
        if ext is None or len(ext) < nz:
            notes.append(f"extended header type {exttyp.decode()} could not be read")
            return None, None
        angles = np.asarray(ext["Alpha tilt"][:nz], dtype=float)
        px = float(ext["Pixel size X"][0]) * 1e9  # metres → nm
        notes.append(f"angles and pixel size from the {exttyp.decode()} extended header")
        return angles, (px if px > 0 else None)
    raw = np.asarray(mrc.extended_header).tobytes()
    # Legacy FEI (pre-2014 TIA/Xplore3D): 128-byte records of 32 float32: a_tilt, b_tilt, x, y, z
    # stage, x/y shift, defocus, exposure, mean, tilt axis, pixel size (m), magnification, ...
    if len(raw) >= 128 * nz and len(raw) % 128 == 0 and nz > 1:
        order = "<" if h.mode.dtype.byteorder in "<=|" else ">"
        rec = np.frombuffer(raw[: 128 * nz], dtype=f"{order}f4").reshape(nz, 32)
        a, px = rec[:, 0].astype(float), float(rec[0, 11]) * 1e9
        if np.all(np.isfinite(a)) and np.all(np.abs(a) <= 90) and np.ptp(a) > 0:
            notes.append("angles and pixel size from a legacy FEI extended header")
            return a, (px if 0 < px < 1e3 else None)
    return None, None


def read_angle_file(path: str | Path) -> np.ndarray:
    """Angles (deg) from a .rawtlt/.tlt-style text file: one number per line, blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "angle file not found", "check the sample's `angles:` path")
    values = []
    for k, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            values.append(float(text.split()[0]))
        except ValueError:
            raise InputError(f"{path}:{k}", f"not a number: {line.strip()!r}",
                             "an angle file holds one tilt angle in degrees per line") from None
    if not values:
        raise InputError(path, "no angles in the file", "write one tilt angle in degrees per line")
    return np.asarray(values, dtype=float)

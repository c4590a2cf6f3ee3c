"""Readers for tilt-series files (TIFF, MRC/ST/ALI incl. FEI extended headers, NumPy) and angle files.

Each reader returns the raw data and whatever the file itself says about angles and pixel size;
deciding between file and config values is the import stage's job.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import formats
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


SUFFIX_FORMAT = {**{s: "TIFF" for s in TIFF_SUFFIXES}, **{s: "MRC" for s in MRC_SUFFIXES},
                 **{s: "NPY" for s in NPY_SUFFIXES}}
_SUFFIX_OF = {"TIFF": ".tif", "MRC": ".mrc", "NPY": ".npy"}


def read_tiltseries(path: str | Path) -> RawSeries:
    """Read a tilt-series (or volume) file by its suffix; raise InputError naming the file on any
    problem: a missing file, a folder, a file whose content is another format, a header that
    promises more than the file holds or than memory can, an unreadable or compressed payload."""
    path = Path(path)
    fmt = file_format(path)
    reader = {"TIFF": _read_tiff, "MRC": _read_mrc, "NPY": _read_npy}[fmt]
    try:
        raw = reader(path)
    except InputError:
        raise
    except MemoryError as exc:
        raise InputError(path, f"not enough memory to read it ({exc})",
                         "crop or bin the stack before importing, or use a larger machine") from exc
    except Exception as exc:  # any parser failure on a damaged file is a message, not a traceback
        raise InputError(path, f"cannot read {fmt} data ({type(exc).__name__}: {exc})",
                         "the file is damaged (corrupt or truncated): copy it again from the "
                         "microscope PC, or export it again") from exc
    if raw.data.ndim != 3:
        raise InputError(path, f"expected a 3D stack (tilt, y, x) but the data are "
                         f"{raw.data.ndim}D with shape {raw.data.shape}",
                         "save all tilts in one stack file (a single image is not a tilt series)")
    return raw


def file_format(path: Path) -> str:
    """'TIFF', 'MRC' or 'NPY' as the suffix says, once the file is known to exist, to be a file
    and not to be something else under that name."""
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in SUFFIX_FORMAT)
        listing = f" (it holds {', '.join(inside[:4])}{', …' if len(inside) > 4 else ''})" \
            if inside else ""
        raise InputError(path, "is a folder, not a file",
                         f"name the stack file itself{listing}; single images in a folder must "
                         "first be combined into one stack (Fiji: File ▸ Import ▸ Image Sequence, "
                         "then File ▸ Save As ▸ Tiff)")
    if not path.is_file():
        raise InputError(path, "file not found",
                         "check the path in the config (relative to the working directory)")
    suffix = path.suffix.lower()
    if suffix not in SUFFIX_FORMAT:
        raise InputError(path, f"unsupported file type {suffix!r}",
                         f"convert the stack to one of {', '.join(SUPPORTED)}")
    expected = SUFFIX_FORMAT[suffix]
    try:
        found = formats.sniff(path)
    except OSError as exc:
        raise InputError(path, f"cannot open it ({exc.strerror or exc})",
                         "make the file readable (permissions) or copy it somewhere readable"
                         ) from exc
    if found != expected and (found is not None or expected != "MRC"):
        raise _wrong_format(path, found, expected)
    return expected


def _wrong_format(path: Path, found: str | None, expected: str) -> InputError:
    name = {"TIFF": "a TIFF", "MRC": "an MRC", "NPY": "a NumPy .npy"}[expected]
    if found == "empty file":
        return InputError(path, "the file is empty (0 bytes)",
                          "the copy failed: copy it again from the microscope PC")
    if found in ("TIFF", "MRC", "NPY"):
        return InputError(path, f"this is {'an' if found == 'MRC' else 'a'} {found} file, not "
                          f"{name} file (despite its {path.suffix} name)",
                          f"rename it to {path.stem}{_SUFFIX_OF[found]}")
    if found in formats.IMAGE_FORMATS:
        return InputError(path, f"this is a {found}, not {name} file (despite its {path.suffix} "
                          "name)", "convert it to a TIFF stack holding all tilts, from the "
                          "original data (PNG/JPEG exports are 8-bit renderings): Fiji File ▸ "
                          "Import ▸ Image Sequence, then File ▸ Save As ▸ Tiff")
    if found == "text file":
        return InputError(path, f"this is a text file, not {name} file (it begins "
                          f"{formats.text_start(path)!r})",
                          "point the config at the image stack (a list of tilt angles goes under "
                          "the sample's `angles:`)")
    if found is not None:
        fix = "save the one stack with np.save(...) as .npy" if found == "ZIP archive" else \
            "export the stack as TIFF or MRC from the microscope software (e.g. Velox, " \
            "DigitalMicrograph) or convert it with Fiji"
        return InputError(path, f"this is a {found}, not {name} file", fix)
    return InputError(path, f"not {name} file: it does not begin with the {expected} signature",
                      f"check that this is the stack you meant; if it is, export it again as "
                      f"{expected} (the file is damaged or another format)")


def _check_memory(path: Path, shape: tuple[int, ...], dtype: np.dtype | str) -> int:
    """Bytes the data will take in memory; a header promising more than the machine has is an
    error (a damaged header would otherwise ask for an impossible allocation)."""
    itemsize = 1 if str(dtype) == "4-bit" else np.dtype(dtype).itemsize  # unpacked to uint8
    nbytes = int(np.prod(shape, dtype=np.float64)) * itemsize
    if nbytes > formats.memory_bytes():
        raise InputError(path, f"the header describes {shape} {dtype} = "
                         f"{formats.gib(nbytes)}, more than this machine's "
                         f"{formats.gib(formats.memory_bytes())} of memory",
                         "if the header is right, crop or bin the stack before importing (or use a "
                         "larger machine); if not, the file is damaged: export it again")
    return nbytes


def _read_tiff(path: Path) -> RawSeries:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series, page = tif.series[0], tif.pages.first
        _check_tiff_layout(path, series, page)
        _check_memory(path, series.shape, series.dtype)
        try:
            data = tif.asarray()
        except ValueError as exc:
            if "imagecodecs" in str(exc):
                raise InputError(path, f"the TIFF is {page.compression.name}-compressed and "
                                 "reading it needs the imagecodecs package, which is missing",
                                 "install stemtomo's dependencies (`make` or `pip install "
                                 "imagecodecs`; conda: envs/io.yaml has it)") from exc
            raise
        pixel = tiff_pixel_size(page, tif.imagej_metadata or {})
    return RawSeries(np.asarray(data), str(path), None, pixel)


def _check_tiff_layout(path: Path, series, page) -> None:
    """Colour TIFFs are not tilt series; uncompressed data must lie inside the file."""
    if page.samplesperpixel > 1 or "S" in series.axes:
        raise InputError(path, f"this is a colour ({page.photometric.name}) TIFF with "
                         f"{page.samplesperpixel} samples per pixel, shape {series.shape} "
                         f"(axes {series.axes})",
                         "tilt series and labels are single-channel: export greyscale data "
                         "(Fiji: Image ▸ Type ▸ 16-bit or 32-bit) from the original data, not a "
                         "colour rendering")
    if page.compression == 1 and series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
        size = path.stat().st_size
        if end > size:
            raise InputError(path, f"truncated: the TIFF describes {series.shape} "
                             f"{series.dtype} ({series.nbytes} bytes of data) but the file "
                             f"ends after {size} bytes",
                             "the copy is incomplete (transfer interrupted?): copy the file again")


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


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, checked against the file's size and memory."""
    from numpy.lib import format as npformat

    try:
        with open(path, "rb") as fh:
            version = npformat.read_magic(fh)
            read = npformat.read_array_header_1_0 if version == (1, 0) else \
                npformat.read_array_header_2_0
            shape, _, dtype = read(fh)
            offset = fh.tell()
    except Exception as exc:  # the header is a Python literal: garbage gives many error types
        raise InputError(path, f"the .npy header is damaged ({type(exc).__name__}: {exc})",
                         "save the array again with np.save, or copy the file again") from exc
    if dtype.hasobject:
        raise InputError(path, f"holds Python objects ({dtype}), not a numeric array",
                         "save a plain numeric array: np.save(path, np.asarray(stack, "
                         "dtype=np.float32))")
    nbytes = _check_memory(path, shape, dtype)
    size = path.stat().st_size
    if offset + nbytes > size:
        raise InputError(path, f"truncated: the header describes {shape} {dtype} "
                         f"({nbytes} bytes of data) but the file holds {size - offset}",
                         "the copy is incomplete (transfer interrupted?): copy the file again")
    return shape, dtype


def _read_npy(path: Path) -> RawSeries:
    _npy_header(path)
    return RawSeries(np.asarray(np.load(path, allow_pickle=False)), str(path))


def _mrc_header(path: Path) -> formats.MrcHeader:
    """The MRC header, checked before mrcfile sees the file: a header that is no MRC header at
    all and a file shorter than its header promises get different diagnoses."""
    h = formats.read_mrc_header(path)
    if h.file_size < 1024:
        raise InputError(path, f"truncated: {h.file_size} bytes, less than the 1024-byte MRC "
                         "header", "the copy is incomplete (transfer interrupted?): copy the file "
                         "again")
    if not h.plausible:
        raise InputError(path, f"not an MRC file: its header gives {h.describe()}",
                         "check that this is the stack you meant (IMOD: `header FILE` shows a "
                         "valid MRC header); raw data without a header must be exported again "
                         "as MRC or TIFF")
    _check_memory(path, h.shape, formats.MRC_DTYPES[h.mode])
    if h.file_size < h.expected_size:
        raise InputError(path, f"truncated: the header promises {h.nz} images of "
                         f"{h.nx}×{h.ny} px (mode {h.mode}), {h.expected_size} bytes with the "
                         f"headers, but the file holds {h.file_size} "
                         f"({100 * h.file_size / h.expected_size:.0f} %)",
                         "the copy is incomplete (transfer interrupted?): copy the file again")
    return h


def _read_mrc(path: Path) -> RawSeries:
    import mrcfile

    _mrc_header(path)
    notes: list[str] = []
    # Permissive: FEI/Thermo files often have a wrong map ID or machine stamp.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mrc = mrcfile.open(path, mode="r", permissive=True)
    with mrc:
        if mrc.data is None:
            raise InputError(path, "mrcfile could not map the data block "
                             f"({'; '.join(str(w.message) for w in caught) or 'no reason given'})",
                             "check the file in IMOD (`header FILE`) and export it again")
        data = np.array(mrc.data)
        voxel = float(mrc.voxel_size.x)
        angles, ext_pixel = _fei_extended_header(mrc, notes)
    notes += [f"mrcfile: {w.message}" for w in caught]
    pixel = voxel / 10.0 if voxel > 0 else None  # header is in Å
    if ext_pixel is not None:
        if pixel is not None and abs(pixel - ext_pixel) > 0.01 * ext_pixel:
            notes.append(f"header pixel size {pixel:.4g} nm differs from the extended header "
                         f"{ext_pixel:.4g} nm; using the extended header")
        pixel = ext_pixel
    return RawSeries(data, str(path), angles, pixel, notes)


def read_shape(path: str | Path) -> tuple[int, ...]:
    """The shape `read_tiltseries(path).data` would have, from the header alone (no pixel data
    read): for checks before any job runs. Raises InputError like the readers."""
    return read_header(path)[0]


def read_header(path: str | Path) -> tuple[tuple[int, ...], str]:
    """(shape, dtype name) of what `read_tiltseries(path).data` would hold, from the header
    alone. Raises InputError like the readers."""
    path = Path(path)
    fmt = file_format(path)
    try:
        if fmt == "NPY":
            shape, dtype = _npy_header(path)
            return tuple(shape), str(dtype)
        if fmt == "MRC":
            h = _mrc_header(path)
            # mrcfile gives one image as 2D
            return (h.shape if h.nz > 1 else h.shape[1:]), formats.MRC_DTYPES.get(h.mode, "?")
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            _check_tiff_layout(path, series, tif.pages.first)
            return tuple(series.shape), str(series.dtype)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"cannot read the {fmt} header ({type(exc).__name__}: {exc})",
                         "the file is damaged: copy it again, or export it again") from exc


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

"""What a file really is, from its first bytes, and whether an MRC header makes sense.

The readers consult this before handing a file to tifffile, mrcfile or NumPy, so that a PNG named
`.tif`, a text file, a folder, an empty file or an MRC whose header is not an MRC header gets its
own diagnosis and fix instead of a parser's message about a "corrupt or truncated" file.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

# Leading bytes of the formats people give by mistake (and of the three we read).
_MAGIC = (
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"),
    (b"\x93NUMPY", "NPY"), (b"\x89PNG\r\n\x1a\n", "PNG image"), (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"), (b"GIF89a", "GIF image"), (b"\x89HDF\r\n\x1a\n", "HDF5 file"),
    (b"PK\x03\x04", "ZIP archive"), (b"\x1f\x8b", "gzip-compressed file"),
)
IMAGE_FORMATS = ("PNG image", "JPEG image", "GIF image")

# MRC modes → bytes per voxel (101: 4-bit, two voxels per byte).
MRC_MODES = {0: 1.0, 1: 2.0, 2: 4.0, 3: 4.0, 4: 8.0, 6: 2.0, 12: 2.0, 101: 0.5}
# ... and the NumPy type each is read as (by mrcfile)
MRC_DTYPES = {0: "int8", 1: "int16", 2: "float32", 3: "complex64", 4: "complex64", 6: "uint16",
              12: "float16", 101: "4-bit"}
_HEADER = 1024


def sniff(path: str | os.PathLike) -> str | None:
    """'TIFF', 'NPY', 'MRC', another format's name ('PNG image', 'text file', 'empty file', ...),
    or None for binary data of no known kind."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(_HEADER)
    if not head:
        return "empty file"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    version = struct.unpack(">i", head[:4])[0] if len(head) >= 16 else 0
    if version in (3, 4) and head[4 * version - 4:4 * version] in (b"\0\0\0\0", b"\0\0\0\1"):
        return f"Gatan DM{version} file"  # version, length(s), then the byte order 0/1 (big-endian)
    if mrc_header(head, path.stat().st_size).plausible:
        return "MRC"
    if _is_text(head):
        return "text file"
    return None


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character cut at the end of the sample is still text
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(c.isprintable() or c in "\n\r\t\f" for c in text)


def text_start(path: str | os.PathLike, n: int = 40) -> str:
    """The first characters of a text file, for a message."""
    with open(path, "rb") as fh:
        text = fh.read(4 * n).decode("utf-8", "replace")
    first = " ".join(text.split())[:n]
    return first + ("…" if len(text.strip()) > n else "")


@dataclass(frozen=True)
class MrcHeader:
    nx: int
    ny: int
    nz: int
    mode: int
    next_bytes: int      # extended header
    map_id: bool         # "MAP " at byte 208
    file_size: int

    @property
    def valid_mode(self) -> bool:
        return self.mode in MRC_MODES

    @property
    def plausible(self) -> bool:
        """A header an MRC writer could have made: known mode, positive sizes, sane extended
        header (the MAP id alone is not required: FEI files often lack it)."""
        return self.valid_mode and min(self.nx, self.ny, self.nz) > 0 and \
            0 <= self.next_bytes <= max(self.file_size - _HEADER, 0)

    @property
    def expected_size(self) -> int:
        voxels = self.nx * self.ny * self.nz
        return _HEADER + self.next_bytes + int(voxels * MRC_MODES.get(self.mode, 0) + 0.5)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.nz, self.ny, self.nx)

    def describe(self) -> str:
        return (f"mode {self.mode}, {self.nx}×{self.ny}×{self.nz} voxels, extended header "
                f"{self.next_bytes} bytes, MAP id {'present' if self.map_id else 'missing'}")


def mrc_header(head: bytes, file_size: int) -> MrcHeader:
    """The MRC2014 header fields that decide whether the file can be read: sizes and mode
    (bytes 0–15), extended header size (92), MAP id (208). The byte order is the machine stamp's
    (212), else whichever order gives a plausible header."""
    if len(head) < _HEADER:
        return MrcHeader(0, 0, 0, -1, 0, False, file_size)
    stamp = head[212:214]
    orders = ["<", ">"] if stamp in (b"DD", b"DA") else [">", "<"] if stamp == b"\x11\x11" \
        else ["<", ">"]
    headers = []
    for order in orders:
        nx, ny, nz, mode = struct.unpack(order + "4i", head[:16])
        (nsymbt,) = struct.unpack(order + "i", head[92:96])
        headers.append(MrcHeader(nx, ny, nz, mode, nsymbt, head[208:212] == b"MAP ", file_size))
    return next((h for h in headers if h.plausible), headers[0])


def read_mrc_header(path: str | os.PathLike) -> MrcHeader:
    path = Path(path)
    with open(path, "rb") as fh:
        return mrc_header(fh.read(_HEADER), path.stat().st_size)


def memory_bytes() -> int:
    """Physical memory of this machine (a file promising more cannot be read into it)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"

"""VTK XML (.vtp PolyData, .vti ImageData) and binary STL writers in NumPy, so the export needs no
VTK in its process (ParaView's VTK and PyPI vtk must never meet in one process). Arrays are written
inline as base64 with a UInt32 byte-count header (VTK XML "binary" format), little-endian."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np

from ..core.io import atomic_path

_TYPES = {np.dtype("float32"): "Float32", np.dtype("float64"): "Float64",
          np.dtype("int32"): "Int32", np.dtype("int64"): "Int64", np.dtype("uint8"): "UInt8"}


def _array(name: str, data: np.ndarray, components: int = 1) -> str:
    data = np.ascontiguousarray(data)
    if data.dtype not in _TYPES:
        raise TypeError(f"unsupported array type {data.dtype} for {name}")
    raw = data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()
    payload = base64.b64encode(np.uint32(len(raw)).tobytes() + raw).decode("ascii")
    return (f'<DataArray type="{_TYPES[data.dtype]}" Name="{name}" NumberOfComponents="{components}" '
            f'format="binary">{payload}</DataArray>')


def _header(kind: str) -> str:
    return (f'<?xml version="1.0"?>\n<VTKFile type="{kind}" version="1.0" byte_order="LittleEndian" '
            f'header_type="UInt32">\n')


def write_vtp(path: str | os.PathLike, points: np.ndarray, triangles: np.ndarray,
              cell_data: dict[str, np.ndarray] | None = None) -> None:
    """Triangles as VTK XML PolyData; `cell_data` arrays have one value per triangle."""
    n, m = len(points), len(triangles)
    cells = "".join(_array(k, np.asarray(v)) for k, v in (cell_data or {}).items())
    text = (_header("PolyData") + f'<PolyData><Piece NumberOfPoints="{n}" NumberOfVerts="0" '
            f'NumberOfLines="0" NumberOfStrips="0" NumberOfPolys="{m}">'
            f"<Points>{_array('Points', points.astype(np.float32), 3)}</Points>"
            f"<CellData>{cells}</CellData>"
            f"<Polys>{_array('connectivity', triangles.astype(np.int64).ravel())}"
            f"{_array('offsets', np.arange(3, 3 * m + 1, 3, dtype=np.int64))}</Polys>"
            "</Piece></PolyData>\n</VTKFile>\n")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_vti(path: str | os.PathLike, volume: np.ndarray, spacing_nm: float, name: str) -> None:
    """A (z, y, x) volume as VTK XML ImageData (point data; x fastest, as VTK stores it)."""
    nz, ny, nx = volume.shape
    extent = f"0 {nx - 1} 0 {ny - 1} 0 {nz - 1}"
    s = f"{spacing_nm} {spacing_nm} {spacing_nm}"
    text = (_header("ImageData") + f'<ImageData WholeExtent="{extent}" Origin="0 0 0" Spacing="{s}">'
            f'<Piece Extent="{extent}"><PointData Scalars="{name}">'
            f"{_array(name, np.ascontiguousarray(volume, dtype=np.float32).ravel())}"
            "</PointData><CellData></CellData></Piece></ImageData>\n</VTKFile>\n")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def write_stl(path: str | os.PathLike, points: np.ndarray, triangles: np.ndarray) -> None:
    """Binary STL (units as the points: nm)."""
    tri = points[triangles].astype(np.float32)  # (m, 3, 3)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-30)
    rec = np.zeros(len(tri), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec["n"], rec["v"] = normal, tri
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(b"stemtomo surface, units nm".ljust(80, b" "))
            fh.write(np.uint32(len(tri)).tobytes())
            fh.write(rec.tobytes())


def read_vtp(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a .vtp written by write_vtp (for tests and the summary), by name."""
    import re

    text = Path(path).read_text()
    out = {}
    for m in re.finditer(r'<DataArray type="(\w+)" Name="(\w+)"[^>]*>([^<]*)</DataArray>', text):
        kind, name, payload = m.groups()
        raw = base64.b64decode(payload)[4:]
        dtype = {v: k for k, v in _TYPES.items()}[kind]
        out[name] = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    return out

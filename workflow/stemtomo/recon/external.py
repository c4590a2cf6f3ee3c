"""A reconstruction made elsewhere (IMOD, tomviz, AreTomo, ...) as the sample's volume: read, put
in stemtomo's (z, y, x) axis order, and given its voxel size, so the later stages run unchanged."""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..core.readers import read_tiltseries
from ..core.samples import axes_order


def import_volume(path: str, axes: str, pixel_size_nm: float | None,
                  key: str = "samples.<sample>") -> tuple[np.ndarray, float, dict]:
    """(volume float32 (z, y, x), voxel size nm, record). `axes` is the stored axis order
    (e.g. "yzx" for IMOD's tilt output before trimvol -rx); the config's pixel size wins over the
    file's."""
    raw = read_tiltseries(path)
    voxel = pixel_size_nm if pixel_size_nm is not None else raw.pixel_size_nm
    if voxel is None:
        raise InputError(path, "no voxel size in the file",
                         f"set `{key}.pixel_size_nm` in the config")
    if raw.data.dtype.kind not in "uif":
        raise InputError(path, f"unsupported data type {raw.data.dtype}",
                         "save the reconstruction as integers or real numbers")
    volume = np.ascontiguousarray(raw.data.transpose(axes_order(axes)), dtype=np.float32)
    if not np.isfinite(volume).all():
        raise InputError(path, "the volume contains NaN or Inf",
                         "replace them (e.g. by 0) in the reconstruction program, or export again")
    record = {"algorithm": "external", "backend": "external", "source": str(path),
              "stored_shape": list(raw.data.shape), "stored_axes": axes,
              "shape_zyx": list(volume.shape), "voxel_size_nm": float(voxel),
              "voxel_size_source": "config" if pixel_size_nm is not None else "file header",
              "residuals": [], "notes": list(raw.notes)}
    return volume, float(voxel), record

"""Writing outputs safely (atomically, with pixel size metadata) and the small file formats."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    A failed stage therefore never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_tiff(path: str | os.PathLike, data: np.ndarray, pixel_size_nm: float | None,
               axes: str = "ZYX") -> None:
    """ImageJ/Fiji-readable TIFF stack with the pixel size in nm (resolution tags + unit)."""
    import tifffile

    kwargs: dict = {"imagej": True, "metadata": {"axes": axes}}
    if pixel_size_nm:
        kwargs["resolution"] = (1.0 / pixel_size_nm, 1.0 / pixel_size_nm)
        kwargs["metadata"].update(unit="nm", spacing=pixel_size_nm)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, **kwargs)


def write_json(path: str | os.PathLike, obj: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_angles(path: str | os.PathLike, angles: Sequence[float]) -> None:
    """One angle in degrees per line (IMOD .tlt/.rawtlt layout)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{a:.4f}\n" for a in angles))

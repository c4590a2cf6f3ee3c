"""Single 2D images as people export them from annotation tools and microscopes: PNG (napari, Fiji,
GIMP), TIFF and NumPy files, read as one 2D array; masks saved as RGB(A) with equal channels
(grey drawn in colour software) are accepted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".npy")


def read_image(path: str | Path) -> np.ndarray:
    """A 2D image (y, x) as stored (dtype kept); InputError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "image not found" if not path.exists() else "is not a file",
                         "check the path (relative to the working directory)")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(path, f"unsupported image type {suffix!r}",
                         f"save the image as one of {', '.join(IMAGE_SUFFIXES)}")
    try:
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                data = np.asarray(im)
        elif suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            import tifffile

            data = tifffile.imread(path)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure becomes one clear message
        raise InputError(path, f"cannot read the image ({type(exc).__name__}: {exc})",
                         "the file is corrupt or not an image of its suffix's type: export it "
                         "again") from exc
    return _as_2d(np.asarray(data), path)


def _as_2d(data: np.ndarray, path: Path) -> np.ndarray:
    data = np.squeeze(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4):  # RGB(A): a grey mask drawn in colour
        rgb = data[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise InputError(path, "is a colour image (its R, G and B channels differ)",
                             "save the mask as a single-channel (greyscale or indexed) image")
        data = rgb[..., 0]
    if data.ndim != 2:
        raise InputError(path, f"expected one 2D image, got shape {data.shape}",
                         "save each slice as its own 2D image")
    return data


def write_png(path: str | Path, image: np.ndarray) -> None:
    """A uint8 or uint16 mask as a lossless single-channel PNG, written atomically."""
    from PIL import Image

    from .io import atomic_path

    data = np.asarray(image)
    if data.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG masks hold uint8 or uint16 values, not {data.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(data).save(tmp, format="PNG")


def image_pixel_size(path: str | Path) -> float | None:
    """The pixel size (nm) a TIFF states (resolution tags with an ImageJ length unit); None for
    other formats or without one."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    import tifffile

    from .readers import tiff_pixel_size

    with tifffile.TiffFile(path) as tif:
        return tiff_pixel_size(tif.pages[0], tif.imagej_metadata or {})

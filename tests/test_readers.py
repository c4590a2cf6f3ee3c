"""Readers: each wrong file gets its own diagnosis and fix (another format under the name, a folder,
an empty, damaged or truncated file, a colour TIFF), compressed TIFFs are read, header-only shapes
agree with the data, and seeded random corruptions of every format give an InputError, never
another exception or a hang."""

from __future__ import annotations

import signal
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
import yaml

from stemtomo.core.errors import InputError
from stemtomo.core.readers import read_shape, read_tiltseries

ROOT = Path(__file__).resolve().parents[1]


def stack(n=5, h=24, w=32, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (1000 + 200 * rng.random((n, h, w))).astype(np.uint16)


def write(path: Path, data: np.ndarray, **kw) -> Path:
    if path.suffix in (".mrc", ".st", ".ali"):
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(data)
    elif path.suffix == ".tif":
        tifffile.imwrite(path, data, **{"photometric": "minisblack", **kw})
    else:
        np.save(path, data)
    return path


def error(path) -> InputError:
    with pytest.raises(InputError) as e:
        read_tiltseries(path)
    return e.value


# --- another format under the name, folders, empty files --------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)


@pytest.mark.parametrize("name", ["ts.tif", "ts.mrc", "ts.npy"])
def test_a_png_under_a_stack_name_is_called_a_png(tmp_path, name):
    (tmp_path / name).write_bytes(PNG)
    e = error(tmp_path / name)
    assert e.problem.startswith("this is a PNG image, not a")
    assert "convert it to a TIFF stack" in e.fix and "Image Sequence" in e.fix


def test_a_text_file_named_tif_is_called_text_and_quoted(tmp_path):
    (tmp_path / "ts.tif").write_text("-60.0\n-58.0\n-56.0\n" * 20)
    e = error(tmp_path / "ts.tif")
    assert e.problem == "this is a text file, not a TIFF file (it begins '-60.0 -58.0 -56.0 -60.0 " \
                        "-58.0 -56.0 -60.…')"
    assert "`angles:`" in e.fix


def test_a_stack_of_another_readable_format_is_to_be_renamed(tmp_path):
    write(tmp_path / "real.tif", stack()).rename(tmp_path / "ts.mrc")
    e = error(tmp_path / "ts.mrc")
    assert e.problem == "this is a TIFF file, not an MRC file (despite its .mrc name)"
    assert e.fix == "rename it to ts.tif"
    write(tmp_path / "real.mrc", stack().astype(np.int16)).rename(tmp_path / "x.npy")
    assert error(tmp_path / "x.npy").fix == "rename it to x.mrc"


def test_a_zip_named_npy_and_an_empty_file(tmp_path):
    np.savez(tmp_path / "both.npz", a=stack(), b=stack())
    (tmp_path / "both.npz").rename(tmp_path / "ts.npy")
    e = error(tmp_path / "ts.npy")
    assert e.problem == "this is a ZIP archive, not a NumPy .npy file" and "np.save" in e.fix
    (tmp_path / "empty.mrc").write_bytes(b"")
    e = error(tmp_path / "empty.mrc")
    assert e.problem == "the file is empty (0 bytes)" and "copy it again" in e.fix


def test_a_folder_is_not_a_missing_file(tmp_path):
    folder = tmp_path / "ts.tif"
    folder.mkdir()
    for i in range(3):
        write(folder / f"tilt_{i:02d}.tif", stack(1))
    e = error(folder)
    assert e.problem == "is a folder, not a file"
    assert "tilt_00.tif, tilt_01.tif, tilt_02.tif" in e.fix and "Image Sequence" in e.fix


def test_a_missing_file_is_still_file_not_found(tmp_path):
    assert error(tmp_path / "nope.tif").problem == "file not found"


# --- MRC headers: not an MRC at all vs. a real header with a short file ---------------------------

def test_garbage_mrc_header_is_not_called_an_interrupted_transfer(tmp_path):
    path = write(tmp_path / "ts.mrc", stack().astype(np.int16))
    blob = bytearray(path.read_bytes())
    blob[:16] = b"\xde\xad\xbe\xef" * 4  # sizes and mode
    path.write_bytes(bytes(blob))
    e = error(path)
    assert e.problem.startswith("not an MRC file: its header gives mode -272716322, ")
    assert "MAP id present" in e.problem and "header FILE" in e.fix
    assert "interrupted" not in str(e)


def test_truncated_mrc_with_a_sound_header_says_how_much_is_missing(tmp_path):
    path = write(tmp_path / "ts.st", stack(n=10).astype(np.int16))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    e = error(path)
    assert e.problem == (f"truncated: the header promises 10 images of 32×24 px (mode 1), {len(blob)} "
                         f"bytes with the headers, but the file holds {len(blob) // 2} (50 %)")
    assert "copy the file again" in e.fix


def test_a_header_promising_more_than_memory_is_refused_before_allocating(tmp_path):
    path = tmp_path / "ts.npy"
    with open(path, "wb") as fh:  # a damaged header: 7.7 PB of uint16
        np.lib.format.write_array_header_1_0(fh, {"descr": "<u2", "fortran_order": False,
                                                  "shape": (5_000_000, 24_000, 32_000)})
        fh.write(bytes(1000))
    e = error(path)
    assert e.problem.startswith("the header describes (5000000, 24000, 32000) uint16 = 7.15e+06 GiB, "
                                "more than this machine's")
    assert "crop or bin" in e.fix


def test_pickled_objects_in_npy(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    e = error(tmp_path / "obj.npy")
    assert e.problem == "holds Python objects (object), not a numeric array"


# --- TIFF: colour, compression --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(24, 32, 3), (4, 24, 32, 3)])
def test_an_rgb_tiff_is_called_colour(tmp_path, shape):
    path = write(tmp_path / "rgb.tif", np.zeros(shape, np.uint8), photometric="rgb")
    e = error(path)
    assert e.problem.startswith("this is a colour (RGB) TIFF with 3 samples per pixel")
    assert "16-bit or 32-bit" in e.fix


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
def test_compressed_tiff_stacks_are_read(tmp_path, compression):
    data = stack(n=6)
    path = write(tmp_path / "c.tif", data, compression=compression, imagej=compression != "zstd",
                 resolution=(2.0, 2.0), metadata={"unit": "nm"} if compression != "zstd" else None)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.compression.name in ("LZW", "ADOBE_DEFLATE", "ZSTD")
    raw = read_tiltseries(path)
    np.testing.assert_array_equal(raw.data, data)
    assert read_shape(path) == data.shape
    if compression != "zstd":
        assert raw.pixel_size_nm == pytest.approx(0.5)


def test_without_imagecodecs_the_message_names_the_package(tmp_path, monkeypatch):
    path = write(tmp_path / "c.tif", stack(), compression="lzw")

    def missing(self, *a, **k):  # what tifffile raises when imagecodecs is not installed
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile.TiffFile, "asarray", missing)
    e = error(path)
    assert e.problem == ("the TIFF is LZW-compressed and reading it needs the imagecodecs package, "
                         "which is missing")
    assert "pip install imagecodecs" in e.fix and "corrupt" not in str(e)


def test_the_io_env_and_the_package_provide_imagecodecs():
    env = yaml.safe_load((ROOT / "envs" / "io.yaml").read_text())["dependencies"]
    assert "imagecodecs =2025.3.30" in [d.split("#")[0].strip() for d in env]
    assert '"imagecodecs>=' in (ROOT / "pyproject.toml").read_text()


# --- header-only shapes ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["v.tif", "v.mrc", "v.npy"])
def test_read_shape_agrees_with_the_data_without_reading_it(tmp_path, name):
    data = stack(n=7, h=20, w=28)
    path = write(tmp_path / name, data.astype(np.int16) if name.endswith(".mrc") else data)
    assert read_shape(path) == read_tiltseries(path).data.shape == (7, 20, 28)


# --- fuzz: damaged files of each format -----------------------------------------------------------

def _timeout(*_):
    raise TimeoutError("reader hung")


def _variants(blob: bytes, rng: np.random.Generator, count: int):
    """Seeded corruptions: truncation anywhere, bytes overwritten in the header, bytes overwritten
    anywhere, and another format's bytes under this name."""
    for k in range(count):
        b = bytearray(blob)
        kind = k % 4
        if kind == 0:
            b = b[: int(rng.integers(0, len(b)))]
        elif kind == 1:
            for _ in range(int(rng.integers(1, 12))):
                b[int(rng.integers(0, min(len(b), 1100)))] = int(rng.integers(0, 256))
        elif kind == 2:
            for _ in range(int(rng.integers(1, 40))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        else:
            b = bytearray(rng.choice([PNG, b"0.0\n1.0\n" * 50, bytes(rng.integers(0, 256, 3000,
                                                                             dtype=np.uint8))]))
        yield kind, bytes(b)


@pytest.mark.parametrize("name,compression", [("f.tif", None), ("f.tif", "zlib"), ("f.mrc", None),
                                              ("f.ali", None), ("f.npy", None)])
def test_fuzzed_files_give_an_input_error_or_data_never_another_exception(tmp_path, name,
                                                                          compression):
    data = stack(n=4, h=16, w=20)
    path = tmp_path / name
    write(path, data.astype(np.int16) if path.suffix in (".mrc", ".ali") else data,
          **({"compression": compression} if compression else {}))
    blob = path.read_bytes()
    rng = np.random.default_rng(sum(map(ord, name + str(compression))))
    old = signal.signal(signal.SIGALRM, _timeout)
    outcomes = {"error": 0, "read": 0}
    try:
        for kind, variant in _variants(blob, rng, 24):
            path.write_bytes(variant)
            signal.alarm(10)
            try:
                for read in (read_tiltseries, read_shape):
                    try:
                        read(path)
                        outcomes["read"] += 1
                    except InputError as e:
                        assert str(e).startswith(str(path)) and "fix:" in str(e), (kind, str(e))
                        outcomes["error"] += 1
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert outcomes["error"] >= 12  # truncations and foreign files at least


def test_an_mrc_cut_inside_its_header_is_called_truncated(tmp_path):
    path = write(tmp_path / "ts.mrc", stack().astype(np.int16))
    path.write_bytes(path.read_bytes()[:500])
    e = error(path)
    assert e.problem == "truncated: 500 bytes, less than the 1024-byte MRC header"


@pytest.mark.parametrize("head,found", [
    (b"\x00\x00\x00\x04" + bytes(8) + b"\x00\x00\x00\x01", "Gatan DM4 file"),
    (b"\x00\x00\x00\x03" + bytes(4) + b"\x00\x00\x00\x01", "Gatan DM3 file"),
    (b"\x89HDF\r\n\x1a\n", "HDF5 file")])  # HDF5: e.g. Velox .emd
def test_microscope_formats_are_named_with_how_to_export_them(tmp_path, head, found):
    (tmp_path / "ts.mrc").write_bytes(head + bytes(2000))
    e = error(tmp_path / "ts.mrc")
    assert e.problem == f"this is a {found}, not an MRC file"
    assert "export the stack as TIFF or MRC" in e.fix

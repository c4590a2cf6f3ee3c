"""Import: every file format and angle source, repairs, exclusion, binning, and every bad input."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import tifffile

from conftest import import_settings
from stemtomo.core import io
from stemtomo.core.errors import InputError
from stemtomo.core.readers import RawSeries, read_angle_file, read_tiltseries
from stemtomo.prep.importer import import_tiltseries

N, H, W = 9, 24, 32
ANGLES = np.linspace(-60, 60, N)


def series(n=N, seed=0) -> np.ndarray:
    """Smooth positive images with a per-tilt signature (image i has mean ~ 100 + 10 i)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:H, :W]
    base = 50 + 40 * np.exp(-((y - 12) ** 2 + (x - 16) ** 2) / 40.0)
    return np.stack([base * (1 + 0.1 * i) + rng.normal(0, 0.5, (H, W)) for i in range(n)]).astype(
        np.float32)


def run(raw, angles=None, px=None, **settings):
    return import_tiltseries(raw, angles, px, import_settings(**settings), sample_key="samples.s")


def none_settings(**kw):
    return {"background": "none", "normalize": "none", **kw}


# --- formats -------------------------------------------------------------------------------------

def test_tiff_round_trip_carries_pixel_size(tmp_path):
    data = series()
    io.write_tiff(tmp_path / "ts.tif", data, 0.42)
    raw = read_tiltseries(tmp_path / "ts.tif")
    assert raw.pixel_size_nm == pytest.approx(0.42)
    np.testing.assert_array_equal(raw.data, data)


def test_tiff_in_microns_and_without_unit(tmp_path):
    tifffile.imwrite(tmp_path / "um.tif", series(), imagej=True, resolution=(1 / 0.0005, 1 / 0.0005),
                     metadata={"unit": "micron"})
    assert read_tiltseries(tmp_path / "um.tif").pixel_size_nm == pytest.approx(0.5)
    tifffile.imwrite(tmp_path / "plain.tiff", series())
    raw = read_tiltseries(tmp_path / "plain.tiff")
    assert raw.pixel_size_nm is None
    with pytest.raises(InputError, match="samples.s.pixel_size_nm"):
        run(raw, list(ANGLES))
    assert run(raw, list(ANGLES), px=0.7).pixel_size_nm == 0.7


def test_mrc_header_pixel_size_in_angstrom(tmp_path):
    with mrcfile.new(tmp_path / "ts.st") as m:
        m.set_data(series())
        m.voxel_size = 5.5
    raw = read_tiltseries(tmp_path / "ts.st")
    assert raw.pixel_size_nm == pytest.approx(0.55) and raw.angles is None
    out = run(raw, str(_rawtlt(tmp_path)))
    np.testing.assert_allclose(out.angles, ANGLES)


def _rawtlt(tmp_path, angles=ANGLES):
    p = tmp_path / "ts.rawtlt"
    p.write_text("\n".join(f"{a:.2f}" for a in angles) + "\n\n")
    return p


@pytest.mark.parametrize("exttyp", [b"FEI1", b"FEI2"])
def test_fei_extended_header_gives_angles_and_pixel_size(tmp_path, exttyp):
    dtype = mrcfile.dtypes.get_ext_header_dtype(exttyp, "<")
    ext = np.zeros(N, dtype=dtype)
    ext["Metadata size"] = dtype.itemsize
    ext["Alpha tilt"] = ANGLES[::-1]  # stored in acquisition order +60 → -60
    ext["Pixel size X"] = 0.31e-9
    with mrcfile.new(tmp_path / "fei.mrc") as m:
        m.set_data(series()[::-1].copy())
        m.set_extended_header(ext)
        m.header.exttyp = exttyp
    raw = read_tiltseries(tmp_path / "fei.mrc")
    np.testing.assert_allclose(raw.angles, ANGLES[::-1])
    assert raw.pixel_size_nm == pytest.approx(0.31)
    out = run(raw, **none_settings())
    np.testing.assert_allclose(out.angles, ANGLES)  # sorted ascending, data with it
    np.testing.assert_allclose(out.stack, series(), atol=1e-4)
    assert out.meta["angle_source"] == "file header" and out.meta["pixel_size_source"] == "file header"


def test_legacy_fei_extended_header(tmp_path):
    rec = np.zeros((N, 32), dtype="<f4")
    rec[:, 0] = ANGLES
    rec[:, 11] = 0.25e-9
    with mrcfile.new(tmp_path / "old.mrc") as m:
        m.set_data(series())
        m.set_extended_header(np.frombuffer(rec.tobytes() + bytes(128 * (1024 - N)), dtype="V1"))
    raw = read_tiltseries(tmp_path / "old.mrc")
    np.testing.assert_allclose(raw.angles, ANGLES, atol=1e-5)
    assert raw.pixel_size_nm == pytest.approx(0.25)


def test_permissive_open_of_a_file_with_a_bad_map_id(tmp_path):
    path = tmp_path / "bad_id.mrc"
    with mrcfile.new(path) as m:
        m.set_data(series())
        m.voxel_size = 4.0
    blob = bytearray(path.read_bytes())
    blob[208:212] = b"XXXX"  # map ID, which some acquisition software gets wrong
    path.write_bytes(bytes(blob))
    raw = read_tiltseries(path)
    assert raw.data.shape == (N, H, W)
    assert any("map id" in n.lower() for n in raw.notes)  # recorded, not fatal


def test_int16_holding_wrapped_uint16_is_repaired(tmp_path):
    truth = (20000 + 30000 * series() / series().max()).astype(np.uint16)  # up to 50000
    assert truth.max() > 32767
    with mrcfile.new(tmp_path / "wrap.mrc") as m:
        m.set_data(truth.view(np.int16))
        m.voxel_size = 10.0
    raw = read_tiltseries(tmp_path / "wrap.mrc")
    assert raw.data.dtype == np.int16 and raw.data.min() < 0
    out = run(raw, list(ANGLES), **none_settings())
    assert out.meta["int16"] == "wrapped"
    np.testing.assert_array_equal(out.stack, truth.astype(np.float32))
    # Signed data that is merely offset (no wrap) stays signed.
    offset = (series() * 50 - 20000).astype(np.int16)
    out = run(RawSeries(offset, "offset.npy", None, 1.0), list(ANGLES), **none_settings())
    assert out.meta["int16"] == "signed"
    np.testing.assert_array_equal(out.stack, offset.astype(np.float32))


def test_npy_and_angle_specs(tmp_path):
    np.save(tmp_path / "ts.npy", series())
    raw = read_tiltseries(tmp_path / "ts.npy")
    a = run(raw, {"start": -60, "step": 15}, px=1.0).angles
    b = run(raw, {"start": -60, "step": 15, "stop": 60}, px=1.0).angles
    c = run(raw, list(ANGLES), px=1.0).angles
    d = run(raw, str(_rawtlt(tmp_path)), px=1.0).angles
    for x in (a, b, c, d):
        np.testing.assert_allclose(x, ANGLES)
    # Descending angles are monotonic too, and come out ascending.
    e = run(raw, {"start": 60, "step": -15}, px=1.0, **none_settings())
    np.testing.assert_allclose(e.angles, ANGLES)
    np.testing.assert_allclose(e.stack, series()[::-1])


def test_angle_file_with_comments_and_bad_lines(tmp_path):
    p = tmp_path / "a.tlt"
    p.write_text("# angles\n-3.0\n  0.0  \n3.0 # last\n")
    np.testing.assert_allclose(read_angle_file(p), [-3, 0, 3])
    p.write_text("-3\nzero\n3\n")
    with pytest.raises(InputError, match=r"a.tlt:2: not a number"):
        read_angle_file(p)


# --- processing ----------------------------------------------------------------------------------

def test_exclusion_by_index_and_angle_is_recorded():
    raw = RawSeries(series(), "x.npy", None, 1.0)
    out = run(raw, list(ANGLES), exclude_indices=[0, 4], exclude_angles=[60.0], **none_settings())
    assert len(out.angles) == N - 3 and 0.0 not in out.angles and 60.0 not in out.angles
    assert sorted(e["index"] for e in out.meta["excluded"]) == [0, 4, 8]
    np.testing.assert_array_equal(out.meta["file_indices"], [1, 2, 3, 5, 6, 7])
    np.testing.assert_allclose(out.stack, series()[[1, 2, 3, 5, 6, 7]])


def test_unsorted_stack_is_sorted_with_its_images_when_allowed():
    order = np.array([4, 5, 3, 6, 2, 7, 1, 8, 0])  # dose-symmetric
    raw = RawSeries(series()[order], "ds.npy", None, 1.0)
    with pytest.raises(InputError, match="allow_unsorted"):
        run(raw, list(ANGLES[order]))
    out = run(raw, list(ANGLES[order]), allow_unsorted=True, **none_settings())
    np.testing.assert_allclose(out.angles, ANGLES)
    np.testing.assert_allclose(out.stack, series())


def test_crop_and_binning_update_the_pixel_size():
    raw = RawSeries(series(), "x.npy", None, 0.5)
    out = run(raw, list(ANGLES), crop={"y": [2, 22], "x": [4, 28]}, binning=2, **none_settings())
    assert out.stack.shape == (N, 10, 12) and out.pixel_size_nm == pytest.approx(1.0)
    np.testing.assert_allclose(out.stack[:, 0, 0], series()[:, 2:4, 4:6].mean(axis=(1, 2)), rtol=1e-6)
    with pytest.raises(InputError, match=r"samples.s.import.crop"):
        run(raw, list(ANGLES), crop={"y": [0, 99]})


def test_background_and_beam_current_are_normalised():
    rng = np.random.default_rng(1)
    obj = np.zeros((N, H, W), np.float32)
    obj[:, 6:18, 8:24] = 100.0  # same object (same total) at every tilt, vacuum around it
    gains = 1 + rng.normal(0, 0.1, N)
    offsets = rng.uniform(10, 40, N)
    raw = RawSeries((obj * gains[:, None, None] + offsets[:, None, None]).astype(np.float32),
                    "beam.npy", None, 1.0)
    out = run(raw, list(ANGLES))
    np.testing.assert_allclose(out.meta["background_levels"], offsets, rtol=1e-4)
    totals = out.stack.sum(axis=(1, 2))
    np.testing.assert_allclose(totals, np.median(totals), rtol=1e-5)
    np.testing.assert_allclose(out.stack[:, 0, 0], 0, atol=1e-3)
    assert out.stack.dtype == np.float32


# --- bad input: a clear error that names the file or key and the fix -----------------------------

def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.mrc: file not found") as e:
        read_tiltseries(tmp_path / "nope.mrc")
    assert "fix:" in str(e.value)


def test_unsupported_suffix(tmp_path):
    (tmp_path / "ts.dm4").write_bytes(b"\0" * 100)
    with pytest.raises(InputError, match="unsupported file type '.dm4'"):
        read_tiltseries(tmp_path / "ts.dm4")


@pytest.mark.parametrize("name", ["ts.tif", "ts.mrc", "ts.npy"])
def test_corrupt_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"this is not image data" * 10)
    with pytest.raises(InputError, match=name) as e:
        read_tiltseries(tmp_path / name)
    assert "fix:" in str(e.value)


def save(path, data):
    """Write an array in the format its suffix names, with each format's own library."""
    if path.suffix == ".mrc":
        with mrcfile.new(path) as m:
            m.set_data(data)
    elif path.suffix == ".tif":
        tifffile.imwrite(path, data)
    else:
        np.save(path, data)


@pytest.mark.parametrize("name", ["ts.mrc", "ts.tif", "ts.npy"])
def test_truncated_file(tmp_path, name):
    path = tmp_path / name
    save(path, series())
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(InputError, match=name) as e:
        read_tiltseries(path)
    assert "truncated" in str(e.value) or "corrupt" in str(e.value)


@pytest.mark.parametrize("name", ["one.tif", "one.mrc", "one.npy"])
def test_two_dimensional_data(tmp_path, name):
    path = tmp_path / name
    save(path, series()[0])
    with pytest.raises(InputError, match="expected a 3D stack"):
        read_tiltseries(path)


def test_angle_count_mismatch():
    raw = RawSeries(series(), "ts.npy", None, 1.0)
    with pytest.raises(InputError, match="ts.npy: 9 images but 8 angles") as e:
        run(raw, list(ANGLES[:8]))
    assert "fix:" in str(e.value)


def test_duplicate_and_non_monotonic_angles():
    raw = RawSeries(series(), "ts.npy", None, 1.0)
    dup = list(ANGLES)
    dup[5] = dup[4]
    with pytest.raises(InputError, match=r"duplicate tilt angles \[0.0\] at image indices \[\[4, 5\]\]"):
        run(raw, dup)
    # Dropping the repeat, as the message says, is the fix, and it works.
    out = run(raw, dup, exclude_indices=[5])
    assert len(out.angles) == N - 1 and list(out.angles) == sorted(set(dup))
    swapped = list(ANGLES)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    with pytest.raises(InputError, match="not monotonic: image 3 has"):
        run(raw, swapped)
    stray = list(ANGLES)
    stray[7] = 140.0  # a corrupt entry: excluding its image is the fix
    with pytest.raises(InputError, match=r"beyond ±90°: \[140.0\] at image indices \[7\]"):
        run(raw, stray)
    assert len(run(raw, stray, exclude_indices=[7]).angles) == N - 1
    with pytest.raises(InputError, match="beyond ±90°"):
        run(raw, list(np.linspace(-120, 120, N)))


def test_no_angles_anywhere():
    with pytest.raises(InputError, match="carries no tilt angles") as e:
        run(RawSeries(series(), "ts.npy", None, 1.0), None)
    assert "samples.s.angles" in str(e.value)


def test_nan_inf_and_constant_images_name_the_tilts():
    data = series()
    data[3, 5, 5] = np.nan
    data[6, 1, 1] = np.inf
    with pytest.raises(InputError, match=r"images \[3, 6\] contain NaN or Inf") as e:
        run(RawSeries(data, "ts.npy", None, 1.0), list(ANGLES))
    assert "exclude_indices: [3, 6]" in str(e.value)
    # Excluding them is the fix, and it works.
    assert len(run(RawSeries(data, "ts.npy", None, 1.0), list(ANGLES), exclude_indices=[3, 6]).angles) == 7
    data = series()
    data[2] = 7.0
    with pytest.raises(InputError, match=r"images \[2\] are constant"):
        run(RawSeries(data, "ts.npy", None, 1.0), list(ANGLES))


def test_bad_exclusions_are_named():
    raw = RawSeries(series(), "ts.npy", None, 1.0)
    with pytest.raises(InputError, match="samples.s.import.exclude_indices"):
        run(raw, list(ANGLES), exclude_indices=[9])
    with pytest.raises(InputError, match="samples.s.import.exclude_angles: no tilt at 33"):
        run(raw, list(ANGLES), exclude_angles=[33])

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


# --- angles in radians -----------------------------------------------------------------------------

RADIANS = np.round(np.arange(-1.2, 1.2001, 0.08), 4)  # 31 tilts, ±68.8°


def test_radian_angles_are_refused_with_the_fix(tmp_path):
    raw = RawSeries(series(31), "ts.npy", None, 1.0)
    for spec in (list(RADIANS), {"start": -1.2, "step": 0.08}):
        with pytest.raises(InputError) as e:
            run(raw, spec)
        assert e.value.problem == ("the 31 tilt angles run from -1.2 to 1.2: as degrees that is a "
                                   "±1.2° series with 0.08° steps, almost certainly radians (±68.8° "
                                   "with 4.58° steps)")
        assert e.value.fix == ("if they are radians, set `samples.s.import.angles_unit: radians` "
                               "(they are converted to degrees); if the range really is this "
                               "narrow, set `samples.s.import.angles_unit: degrees`")
    rawtlt = tmp_path / "ts.rawtlt"
    rawtlt.write_text("".join(f"{a}\n" for a in RADIANS))
    with pytest.raises(InputError, match=f"{rawtlt}: the 31 tilt angles run from -1.2 to 1.2"):
        run(raw, str(rawtlt))


def test_angles_unit_radians_converts_and_degrees_accepts_a_narrow_range():
    raw = RawSeries(series(31), "ts.npy", None, 1.0)
    out = run(raw, list(RADIANS), angles_unit="radians", exclude_angles=[0.0])
    np.testing.assert_allclose(out.angles, np.degrees(np.delete(RADIANS, 15)), atol=1e-9)
    assert "angles converted from radians (samples.s.import.angles_unit)" in out.meta["notes"]
    narrow = np.linspace(-4, 4, 31)  # a real ±4° series, said so
    np.testing.assert_allclose(run(raw, list(narrow), angles_unit="degrees").angles, narrow)
    with pytest.raises(InputError, match="almost certainly radians"):
        run(raw, list(narrow))  # more than 10 tilts within ±5°: refused by default
    wide = RawSeries(series(9), "ts.npy", None, 1.0)
    with pytest.raises(InputError, match="±1.2° series"):  # within ±π/2: radians at any count
        run(wide, list(np.linspace(-1.2, 1.2, 9)))
    assert len(run(wide, list(np.linspace(-4, 4, 9))).angles) == 9  # 9 tilts over ±4°: allowed
    with pytest.raises(InputError, match="duplicate tilt angles"):  # not "radians"
        run(raw, [0.0] * 31)
    with pytest.raises(InputError, match="converted from radians") as e:
        run(raw, list(np.linspace(-60, 60, 31)), angles_unit="radians")  # degrees said radians
    assert "remove that setting" in e.value.fix


# --- int16 that holds wrapped uint16 counts --------------------------------------------------------

def haadf_counts(bright_fraction: float, n=11, size=96, seed=0) -> np.ndarray:
    """uint16 HAADF-like counts: vacuum ~800, a support up to ~10 000, Pt blobs (Gaussian, 1.5–3 px)
    scaled so that `bright_fraction` of the pixels exceed 32767; Poisson noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    base = 800 + 9000 * np.exp(-((x - size / 2) ** 2 / 1250 + (y - size / 2) ** 2 / 2450))
    pt = np.zeros((n, size, size))
    for i in range(n):
        for cy, cx, s in zip(*rng.uniform(10, size - 10, (2, 12)), rng.uniform(1.5, 3, 12),
                             strict=True):
            pt[i] += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s**2))
    lo, hi = 1e3, 1e6
    for _ in range(60):  # bisect the Pt amplitude for the wanted bright fraction
        amp = (lo * hi) ** 0.5
        lo, hi = (amp, hi) if np.mean(base + amp * pt > 32767) < bright_fraction else (lo, amp)
    return rng.poisson(np.minimum(base + amp * pt, 65535)).astype(np.uint16)


@pytest.mark.parametrize("fraction", [0.005, 0.02])
def test_auto_recognises_sparse_wrapped_counts(fraction):
    truth = haadf_counts(fraction)
    assert np.mean(truth > 32767) == pytest.approx(fraction, rel=0.1)
    stored = truth.view(np.int16)
    assert np.corrcoef(stored.ravel(), truth.ravel())[0, 1] < 0.7  # read as signed: corrupted
    out = run(RawSeries(stored, "ts.mrc", None, 1.0), list(np.linspace(-60, 60, 11)),
              **none_settings())
    assert out.meta["int16"] == "wrapped"
    np.testing.assert_array_equal(out.stack, truth.astype(np.float32))
    assert any("sign changes between neighbouring pixels are jumps above 32767 → wrapped" in note
               for note in out.meta["notes"])


def test_genuinely_signed_int16_stays_signed():
    angles = list(np.linspace(-60, 60, 11))
    rng = np.random.default_rng(1)
    # dark-subtracted counts: noise around zero where the signal is lowest
    counts = haadf_counts(0.001).astype(np.float64) + rng.normal(0, 30, (11, 96, 96))
    dark_subtracted = (counts - np.percentile(counts, 10, axis=(1, 2), keepdims=True)).astype(np.int16)
    assert (dark_subtracted < 0).mean() > 0.05
    out = run(RawSeries(dark_subtracted, "ts.mrc", None, 1.0), angles, **none_settings())
    assert out.meta["int16"] == "signed"
    np.testing.assert_array_equal(out.stack, dark_subtracted.astype(np.float32))
    # signed data spanning most of the int16 range, smoothly through zero
    y, x = np.mgrid[:96, :96]
    full = np.stack([30000 * np.sin((x + 3 * i) / 15.0) * np.cos(y / 20.0) for i in range(11)])
    full = (full + rng.normal(0, 50, full.shape)).astype(np.int16)
    assert run(RawSeries(full, "ts.mrc", None, 1.0), angles, **none_settings()).meta["int16"] == \
        "signed"


def test_undecidable_int16_asks_for_the_setting():
    rng = np.random.default_rng(2)
    # left half: signed noise through zero; right half: counts around 32768 stored as int16
    data = rng.normal(0, 100, (11, 32, 32))
    data[..., 16:] += 32768
    data = data.round().astype(np.int32).astype(np.uint16).view(np.int16)
    with pytest.raises(InputError) as e:
        run(RawSeries(data, "ts.mrc", None, 1.0), list(np.linspace(-60, 60, 11)))
    assert e.value.source == "samples.s.import.int16"
    assert e.value.problem.startswith("int16 data: cannot tell signed values from wrapped uint16 "
                                      "counts (")
    assert "`samples.s.import.int16: wrapped`" in e.value.fix


# --- series that are no series, blank stacks --------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2])
def test_a_single_image_is_not_blamed_on_exclusion(n):
    raw = RawSeries(series(n), "one.mrc", None, 1.0)
    with pytest.raises(InputError) as e:
        run(raw, list(ANGLES[:n]))
    assert e.value.source == "one.mrc"
    assert e.value.problem == (f"the file holds only {n} image{'s' if n > 1 else ''} (shape "
                               f"({n}, {H}, {W})): a tilt series needs many (typically 40–150 tilts)")
    assert "exclusion" not in str(e.value) and "one stack file" in e.value.fix
    with pytest.raises(InputError, match=r"only 2 of 9 tilts left after excluding \[0, 1, 2, 3, 4, "
                                         r"5, 6\]"):
        run(RawSeries(series(), "ts.mrc", None, 1.0), list(ANGLES), exclude_indices=list(range(7)))


def test_all_constant_images_blame_the_file_not_every_tilt():
    data = np.zeros((N, H, W), np.float32)
    with pytest.raises(InputError) as e:
        run(RawSeries(data, "ts.tif", None, 1.0), list(ANGLES))
    assert e.value.problem == "all 9 images are constant (every pixel = 0): the stack holds no image data"
    assert "exclude_indices" not in e.value.fix and "right file" in e.value.fix
    data = series()
    data[:6] = 5.0
    with pytest.raises(InputError) as e:
        run(RawSeries(data, "ts.tif", None, 1.0), list(ANGLES))
    assert e.value.problem == "6 of 9 images are constant (blank frames): [0, 1, 2, 3, 4, 5]"
    assert "exclude_indices" not in e.value.fix

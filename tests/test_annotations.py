"""Annotations from any tool: encodings, label volumes and per-slice mask folders, 2D datasets,
external volumes, the checks before any job, network agreement, and the annotation helper."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import sphere
from stemtomo.core import io
from stemtomo.core.annotations import NAPARI, STEMTOMO, Encoding, mask_files, read_annotations
from stemtomo.core.config import validate_config
from stemtomo.core.errors import InputError
from stemtomo.core.images import read_image, write_png
from stemtomo.core.labels import ALUMINA, BACKGROUND, IGNORE, PT
from stemtomo.prep.inputs import check_inputs
from stemtomo.prep.slices import load_dataset, pair_files

SHAPE = (20, 24, 28)


def scene(shape=SHAPE) -> np.ndarray:
    """stemtomo labels: a slab of support with two Pt balls."""
    labels = np.zeros(shape, np.uint8)
    labels[:, 8:18, :] = ALUMINA
    labels[sphere(shape, (6, 7, 9), 3)] = PT
    labels[sphere(shape, (14, 18, 20), 2.5)] = PT
    return labels


def masks_folder(tmp_path, labels, slices, encoding=NAPARI, name="z{:04d}.png") -> Path:
    folder = tmp_path / "masks"
    folder.mkdir(exist_ok=True)
    for z in slices:
        stored = encoding.invert(labels[z])
        path = folder / name.format(z)
        if path.suffix == ".png":
            write_png(path, stored)
        else:
            tifffile.imwrite(path, stored)
    return folder


# --- encodings --------------------------------------------------------------------------------

def test_encodings_map_any_tool_onto_the_classes():
    napari = Encoding.from_config({"unlabelled": 0, "background": 1, "alumina": 2, "pt": 3})
    assert napari == NAPARI
    stored = np.array([[0, 1, 2, 3]], np.uint8)
    assert napari.apply(stored, "m.png").tolist() == [[IGNORE, BACKGROUND, ALUMINA, PT]]
    grey = Encoding.from_config({"background": 0, "alumina": 127, "pt": [254, 255]})
    assert grey.apply(np.array([0, 127, 254, 255], np.uint8), "m.png").tolist() == [0, 1, 2, 2]
    assert Encoding.from_config(None) == STEMTOMO
    labels = scene()
    assert np.array_equal(napari.apply(napari.invert(labels), "x"), labels)  # round trip
    with pytest.raises(InputError, match=r"m.png: label values \[5\] are not in the label encoding "
                       r"\(0 = unlabelled, 1 = background, 2 = alumina, 3 = pt\)"):
        napari.apply(np.array([0, 5], np.uint8), "m.png")
    with pytest.raises(InputError, match="value 2 is given to two classes"):
        Encoding.from_config({"alumina": 2, "pt": [2, 3]})
    with pytest.raises(InputError, match="no value is mapped to pt"):
        Encoding.from_config({"background": 0, "pt": []})
    with pytest.raises(InputError, match="not integers"):
        napari.apply(np.array([0.5]), "m.tif")


def test_per_slice_masks_partially_painted_become_the_labels(tmp_path):
    labels = scene()
    painted = NAPARI.invert(labels)
    painted[4, :, :10] = 0  # slice 4 only partly painted: the rest stays unlabelled
    folder = tmp_path / "masks"
    folder.mkdir()
    for z in (4, 11, 15):
        write_png(folder / f"slice_{z:03d}.png", painted[z])
    got = read_annotations(folder, SHAPE, NAPARI)
    assert np.array_equal(np.flatnonzero((got != IGNORE).any(axis=(1, 2))), [4, 11, 15])
    assert (got[4, :, :10] == IGNORE).all() and np.array_equal(got[4, :, 10:], labels[4, :, 10:])
    assert np.array_equal(got[11], labels[11]) and (got[[0, 5, 19]] == IGNORE).all()


def test_bad_mask_folders_are_named(tmp_path):
    labels = scene()
    folder = masks_folder(tmp_path, labels, [4, 11])
    with pytest.raises(InputError, match=r"z0004.png: mask of shape \(24, 28\), the volume's "
                       r"slices are \(24, 30\)"):
        read_annotations(folder, (20, 24, 30), NAPARI)
    with pytest.raises(InputError, match="slice 11 is outside the volume's 10 slices"):
        read_annotations(folder, (10, 24, 28), NAPARI)
    write_png(folder / "copy_of_11.png", NAPARI.invert(labels[11]))
    with pytest.raises(InputError, match="slice 11 also has the mask"):
        mask_files(folder)
    (folder / "copy_of_11.png").unlink()
    write_png(folder / "notes.png", np.zeros((24, 28), np.uint8))
    with pytest.raises(InputError, match="notes.png: the file name holds no slice number"):
        mask_files(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no mask files"):
        mask_files(empty)
    (tmp_path / "np").mkdir()
    no_pt = masks_folder(tmp_path / "np", np.where(labels == PT, ALUMINA, labels).astype(np.uint8),
                         [4])
    with pytest.raises(InputError, match="the labels hold no Pt at all"):
        read_annotations(no_pt, SHAPE, NAPARI)


def test_colour_masks_with_equal_channels_are_read_and_coloured_ones_refused(tmp_path):
    from PIL import Image

    grey = (scene()[6] * 100).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "z0006.png")
    assert np.array_equal(read_image(tmp_path / "z0006.png"), grey)
    rgb = np.stack([grey, grey, np.zeros_like(grey)], axis=-1)
    Image.fromarray(rgb).save(tmp_path / "z0007.png")
    with pytest.raises(InputError, match="colour image"):
        read_image(tmp_path / "z0007.png")


def test_label_volumes_from_other_tools(tmp_path):
    labels = scene()
    tifffile.imwrite(tmp_path / "napari.tif", NAPARI.invert(labels))  # napari's "save layer"
    assert np.array_equal(read_annotations(tmp_path / "napari.tif", SHAPE, NAPARI), labels)
    io.write_mrc(tmp_path / "amira.mrc", labels.astype(np.float32), 0.5)
    with pytest.raises(InputError, match="not integers"):  # an MRC of floats is no label map
        read_annotations(tmp_path / "amira.mrc", SHAPE, STEMTOMO)
    with pytest.raises(InputError, match=r"labels have shape \(20, 24, 28\), the volume "
                       r"\(20, 28, 24\)"):
        read_annotations(tmp_path / "napari.tif", (20, 28, 24), NAPARI)


# --- 2D datasets --------------------------------------------------------------------------------

def dataset(tmp_path, n_train=5, n_val=2, mask_name="label_{:03d}.png"):
    labels = scene((n_train + n_val, 24, 28))
    rng = np.random.default_rng(0)
    images = (labels * 50 + rng.normal(0, 5, labels.shape)).astype(np.float32)
    for part, idx in (("train", range(n_train)), ("val", range(n_train, n_train + n_val))):
        (tmp_path / part / "img").mkdir(parents=True)
        (tmp_path / part / "lab").mkdir(parents=True)
        for k, i in enumerate(idx):
            tifffile.imwrite(tmp_path / part / "img" / f"img_{k:03d}.tif", images[i])
            write_png(tmp_path / part / "lab" / mask_name.format(k), (labels[i] * 127).astype(np.uint8))
    spec = {p: {"images": str(tmp_path / p / "img/*.tif"), "masks": str(tmp_path / p / "lab/*.png")}
            for p in ("train", "val")}
    return spec, images, labels


def test_a_2d_dataset_is_paired_checked_and_stacked(tmp_path):
    spec, images, labels = dataset(tmp_path)
    grey = Encoding.from_config({"background": 0, "alumina": 127, "pt": 254})
    data = load_dataset({**spec, "pairing": "sorted"}, grey, "slices")
    assert np.array_equal(data.labels, labels) and np.allclose(data.images, images)
    assert data.record["train_slices"] == [0, 1, 2, 3, 4] and data.record["val_slices"] == [5, 6]
    assert data.record["val"][0]["mask"].endswith("val/lab/label_000.png")
    with pytest.raises(InputError, match=r"slices.train: unpaired files: images without a mask "
                       r"\['img_000.tif'.*masks without an image \['label_000'"):
        load_dataset({**spec, "pairing": "name"}, grey, "slices")


def test_pairing_rules_and_their_errors(tmp_path):
    a = [tmp_path / "i/0001.tif", tmp_path / "i/0002.tif"]
    b = [tmp_path / "m/0002.png", tmp_path / "m/0001.png"]
    assert pair_files(a, b, "name", "k") == [(a[0], b[1]), (a[1], b[0])]
    with pytest.raises(InputError, match="k: 2 images but 1 masks"):
        pair_files(a, b[:1], "sorted", "k")
    spec, _, _ = dataset(tmp_path / "d")
    bad = tmp_path / "d" / "val" / "lab" / "label_001.png"
    write_png(bad, np.zeros((24, 30), np.uint8))
    grey = Encoding.from_config({"background": 0, "alumina": 127, "pt": 254})
    with pytest.raises(InputError, match=r"label_001.png: mask of shape \(24, 30\) for the image "
                       r"img_001.tif of shape \(24, 28\)"):
        load_dataset({**spec, "pairing": "sorted"}, grey, "slices")


# --- checks before any job ----------------------------------------------------------------------

def test_volume_samples_are_checked_against_the_volume_header(tmp_path):
    labels = scene()
    io.write_mrc(tmp_path / "rec.mrc", np.zeros((SHAPE[1], SHAPE[0], SHAPE[2]), np.float32), 0.5)
    masks_folder(tmp_path, labels, [4, 11])
    sample = {"volume": "rec.mrc", "volume_axes": "yzx", "labels": "masks",
              "label_values": {"unlabelled": 0, "background": 1, "alumina": 2, "pt": 3}}
    cfg = validate_config({"samples": {"v": sample}})
    check_inputs(cfg, tmp_path)  # (y, z, x) on disk → (z, y, x) = SHAPE: fine
    cfg = validate_config({"samples": {"v": {**sample, "volume_axes": "zyx"}}})
    with pytest.raises(InputError, match=r"z0004.png: mask of shape \(24, 28\), the volume's "
                       r"slices are \(20, 28\)"):
        check_inputs(cfg, tmp_path)
    cfg = validate_config({"samples": {"v": {**sample, "label_values": {"pt": 3, "background": 1}}}})
    with pytest.raises(InputError, match=r"z0004.png: label values \[2\] are not in the label "
                       r"encoding \(1 = background, 3 = pt\)"):
        check_inputs(cfg, tmp_path)


def test_external_volumes_come_in_stemtomo_axis_order(tmp_path):
    from stemtomo.recon.external import import_volume

    vol = np.random.default_rng(1).random(SHAPE).astype(np.float32)
    io.write_mrc(tmp_path / "tilt.rec", vol.transpose(1, 0, 2), 0.42)  # IMOD tilt: (y, z, x)
    got, voxel, record = import_volume(str(tmp_path / "tilt.rec"), "yzx", None)
    assert np.array_equal(got, vol) and voxel == pytest.approx(0.42)
    assert record["stored_shape"] == [24, 20, 28] and record["voxel_size_source"] == "file header"
    np.save(tmp_path / "v.npy", vol)
    with pytest.raises(InputError, match=r"v.npy: no voxel size in the file\n  fix: set "
                       r"`s.pixel_size_nm`"):
        import_volume(str(tmp_path / "v.npy"), "zyx", None, "s")
    assert import_volume(str(tmp_path / "v.npy"), "zyx", 0.3)[1] == 0.3


# --- agreement and suggestions -------------------------------------------------------------------

def test_the_slices_where_networks_disagree_most_come_first():
    from stemtomo.evaluate.agreement import pairwise_agreement, slice_disagreement

    truth = scene()
    annotations = np.full(SHAPE, IGNORE, np.uint8)
    annotations[[2, 10]] = truth[[2, 10]]
    a, b, c = truth.copy(), truth.copy(), truth.copy()
    b[6][truth[6] == PT] = ALUMINA        # b misses the Pt of slice 6 (and so of 5 and 7)
    c[6][truth[6] == PT] = ALUMINA
    b[15, 0:4, 0:4] = ALUMINA             # a small alumina speck of one network
    rows = slice_disagreement(np.stack([a, b, c]), annotations, separation=3)
    ranked = [r["z"] for r in rows if r["rank"]]
    assert ranked[0] == 6 and 5 not in ranked[:2] and 7 not in ranked[:2]  # spread out
    assert 15 in ranked and {2, 10}.isdisjoint(r["z"] for r in rows)  # annotated: not listed
    record = pairwise_agreement({"a": a, "b": b, "c": c}, annotations)
    assert record["unannotated_slices"] == 18
    ab = next(p for p in record["pairs"] if p["models"] == ["a", "b"])
    bc = next(p for p in record["pairs"] if p["models"] == ["b", "c"])
    assert bc["pt"] == 1.0 and ab["pt"] < 0.95 and bc["alumina"] < 1.0  # b's speck


def test_planar_particles_do_not_join_unrelated_images():
    from stemtomo.evaluate.particles import particles

    stack = np.zeros((2, 10, 10), np.uint8)
    stack[:, 3:6, 3:6] = PT  # the same spot in two unrelated images
    assert len(particles(stack, 1.0).table) == 1
    assert len(particles(stack, 1.0, planar=True).table) == 2


# --- training from the previous round -------------------------------------------------------------

def test_previous_weights_are_used_only_when_they_fit(tmp_path):
    torch = pytest.importorskip("torch")
    from conftest import stage
    from stemtomo.learn.modelfile import initial_weights, save_model
    from stemtomo.learn.models import build_model
    from stemtomo.learn.settings import TrainSettings
    from stemtomo.learn.training import TrainResult, model_config

    settings = stage(TrainSettings, base=4, depth=2)
    config = model_config("unet", 1, settings)
    model = build_model(**config)
    save_model(str(tmp_path / "previous.pt"), TrainResult(model.state_dict(), [], 3, config),
               {"patch_size": 16, "channels": 1, "normalisation_percentiles": [0, 1]}, settings, {})
    state, why = initial_weights(str(tmp_path / "previous.pt"), config)
    assert state is not None and "best epoch 3" in why
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    other = model_config("unet", 3, settings)  # 2.5D now: the old first layer does not fit
    assert initial_weights(str(tmp_path / "previous.pt"), other)[0] is None
    assert initial_weights(str(tmp_path / "none.pt"), config) == (None, f"no earlier weights at "
                                                                 f"{tmp_path / 'none.pt'}: "
                                                                 "training from scratch")


# --- the annotation helper -------------------------------------------------------------------------

def helper_sample(tmp_path, label_values=True):
    labels = scene()
    volume = (labels * 40 + np.random.default_rng(2).normal(0, 3, SHAPE)).astype(np.float32)
    (tmp_path / "results/v/02_recon").mkdir(parents=True)
    io.write_tiff(tmp_path / "results/v/02_recon/volume.tif", volume, 0.5)
    masks_folder(tmp_path, labels, [4, 11], name="slice_{:03d}.png")
    sample = {"volume": "results/v/02_recon/volume.tif", "labels": "masks"}
    if label_values:
        sample["label_values"] = {"unlabelled": 0, "background": 1, "alumina": 2, "pt": 3}
    return validate_config({"samples": {"v": sample}}), labels


def test_a_session_saves_only_into_the_sample_annotations(tmp_path, monkeypatch):
    from stemtomo.annotate.session import open_session

    monkeypatch.chdir(tmp_path)
    cfg, labels = helper_sample(tmp_path)
    (tmp_path / "results/v/06_evaluate").mkdir(parents=True)
    (tmp_path / "results/v/06_evaluate/suggestions.csv").write_text(
        "z,pt_disputed_voxels,alumina_disputed_voxels,score,rank\n7,9,0,1.5,1\n15,2,0,0.4,2\n1,0,0,0,0\n")
    session = open_session(cfg, "v")
    assert session.suggestions == [7, 15] and session.labels.shape == SHAPE
    assert np.array_equal(np.flatnonzero((session.labels != IGNORE).any(axis=(1, 2))), [4, 11])
    session.prefill(labels, [7, 11])  # 11 is annotated already: the person's work stays
    values = session.layer_values()
    values[11] = 0  # erased in the viewer
    values[15, :4, :4] = 1 + ALUMINA  # a few strokes on slice 15
    before = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    written = session.save(values)
    after = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert written == [4, 7, 15]
    assert after - before == {"slice_007.png", "slice_015.png"}   # named like the others
    assert before - after == {"slice_011.png"}                     # the erased slice's mask
    again = read_annotations(tmp_path / "masks", SHAPE, NAPARI)
    assert np.array_equal(again[7], labels[7]) and (again[15, :4, :4] == ALUMINA).all()
    assert (again[15, 4:] == IGNORE).all() and (again[11] == IGNORE).all()


def test_a_sample_without_labels_gets_a_folder_and_the_hint(tmp_path, monkeypatch):
    from stemtomo.annotate.__main__ import main

    monkeypatch.chdir(tmp_path)
    cfg, _ = helper_sample(tmp_path)
    assert main(["nope", "--config", str(write_config(tmp_path, cfg))]) == 1
    from stemtomo.annotate.session import open_session

    del cfg["samples"]["v"]["labels"]
    session = open_session(cfg, "v")
    assert not session.configured and session.target == Path("annotations/v")
    assert session.target.is_dir() and session.encoding == NAPARI


def write_config(tmp_path, cfg) -> Path:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


NAPARI_SCRIPT = """
import numpy as np, yaml
from stemtomo.annotate.session import open_session
from stemtomo.annotate.viewer import open_viewer
from stemtomo.core.annotations import NAPARI, read_annotations
from stemtomo.core.config import validate_config
cfg = validate_config(yaml.safe_load(open("config.yaml")))
session = open_session(cfg, "v")
viewer, layer = open_viewer(session, show=False)
assert [l.name for l in viewer.layers] == ["volume", "classes"]
assert list(layer.features["class"]) == ["unpainted (unlabelled)", "background", "alumina", "pt"]
assert np.allclose(layer.get_color(3)[:3], (1.0, 0.78, 0.2))
layer.brush_size = 5
layer.paint((8, 12, 14), 3)                       # a Pt stroke on slice 8, as a mouse would
key = next(f for k, f in viewer.keymap.items() if str(k) == "S")
key(viewer)                                       # the save key
shot = viewer.screenshot(canvas_only=True)
viewer.close()
again = read_annotations("masks", session.volume.shape, NAPARI)
assert (again[8] == 2).sum() > 10 and (again[8] != 255).sum() == (again[8] == 2).sum()
print("OK", sorted(np.flatnonzero((again != 255).any(axis=(1, 2))).tolist()), shot.shape)
"""


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (Debian xvfb)")
@pytest.mark.skipif(importlib.util.find_spec("napari") is None,
                    reason="napari is the `annotate` extra (pip install '.[annotate]')")
def test_the_napari_helper_opens_paints_saves_and_feeds_patches(tmp_path):
    cfg, labels = helper_sample(tmp_path)
    write_config(tmp_path, cfg)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "workflow")}
    from stemtomo.export.scene import XVFB

    r = subprocess.run([*XVFB, sys.executable, "-c", textwrap.dedent(NAPARI_SCRIPT)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "OK [4, 8, 11]" in r.stdout, r.stdout[-2000:] + r.stderr[-3000:]
    from conftest import stage
    from stemtomo.learn.patches import extract
    from stemtomo.learn.settings import PatchSettings

    saved = read_annotations(tmp_path / "masks", SHAPE, NAPARI)
    volume = tifffile.imread(tmp_path / "results/v/02_recon/volume.tif")
    train, val, record = extract(volume, saved, stage(PatchSettings, patch_size=8, train_patches=8))
    assert record["annotated_slices"] == [4, 8, 11] and len(train.labels) == 8

"""Real annotations through Snakemake: a reconstruction made elsewhere with per-slice napari masks,
a 2D dataset of images and masks, an aligned tilt series, the correction loop, and bad
annotations stopped before any job."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from smk import TINY, nothing_to_do, planned_jobs, snakemake
from stemtomo.core import io
from stemtomo.core.annotations import NAPARI, annotated_slices
from stemtomo.core.images import write_png

pytestmark = pytest.mark.workflow

NAPARI_VALUES = {"unlabelled": 0, "background": 1, "alumina": 2, "pt": 3}
LEARN = {"patches": TINY["patches"], "train": TINY["train"]}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """The tiny synthetic sample run through the whole workflow (its volume and annotations
    then serve as the user's own)."""
    work = tmp_path_factory.mktemp("annotations")
    r = snakemake(work, {"samples": {"sim": TINY}})
    assert r.returncode == 0, r.stderr[-3000:]
    return work


def export_masks(work, labels, slices, folder="masks"):
    (work / folder).mkdir(exist_ok=True)
    for z in slices:
        write_png(work / folder / f"z{z:04d}.png", NAPARI.invert(labels[z]))


def test_own_volume_and_napari_masks_give_the_simulated_path_s_table(simulated):
    """The same reconstruction given as `volume:` (stored (y, z, x) like IMOD's tilt output), the
    same 12 annotated slices as napari PNG masks, the phantom as `truth:`: the same Table 1."""
    work, res = simulated, simulated / "results"
    volume = tifffile.imread(res / "sim/02_recon/volume.tif")
    io.write_mrc(work / "tilt.rec", volume.transpose(1, 0, 2), 1.0)
    annotations = tifffile.imread(res / "sim/03_patches/labels.tif")
    export_masks(work, annotations, annotated_slices(annotations))
    vol = {"volume": "tilt.rec", "volume_axes": "yzx", "labels": "masks",
           "label_values": NAPARI_VALUES, "truth": "results/sim/00_simulate/labels.tif", **LEARN}
    config = {"samples": {"sim": TINY, "vol": vol}}
    plan = planned_jobs(snakemake(work, config, "-n"))
    assert "import_tiltseries" not in plan and "align" not in plan and "reconstruct" not in plan
    assert plan["import_volume"] == 1 and plan["annotations"] == 1
    r = snakemake(work, config)
    assert r.returncode == 0, r.stderr[-3000:]
    assert np.array_equal(tifffile.imread(res / "vol/02_recon/volume.tif"), volume)
    assert (res / "vol/06_evaluate/metrics.csv").read_text() == \
        (res / "sim/06_evaluate/metrics.csv").read_text()
    rows = (res / "vol/06_evaluate/suggestions.csv").read_text().splitlines()
    assert rows[0] == "z,pt_disputed_voxels,alumina_disputed_voxels,score,rank" and len(rows) > 30
    assert "Agreement between the networks on the 36 unannotated slices" in \
        (res / "vol/06_evaluate/metrics.md").read_text()
    # The loop: two more slices rerun annotations and what follows, nothing before; training
    # starts from the previous round's weights.
    truth = tifffile.imread(res / "sim/00_simulate/labels.tif")
    export_masks(work, truth, [14, 33])
    plan = planned_jobs(snakemake(work, config, "-n"))
    assert plan == {"annotations": 1, "patches": 1, "train": 2, "calibrate_ensemble": 1,
                    "segment_slab": 3, "segment": 3,
                    "evaluate_model": 3, "agreement": 1, "evaluate": 1, "export": 3,
                    "all": 1}  # two networks and their ensemble
    config["samples"]["vol"] = {**vol, "train": {**TINY["train"], "init_from": "previous"}}
    r = snakemake(work, config)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (res / "vol/logs/train_unet.log").read_text()
    assert "init_from previous: starting from the weights in results/vol/04_models/unet/previous.pt" in log
    patches = json.loads((res / "vol/03_patches/patches.json").read_text())
    assert {14, 33} <= set(patches["annotated_slices"])
    assert nothing_to_do(snakemake(work, config, "-n"))


def test_a_2d_dataset_trains_and_evaluates_without_a_volume(simulated):
    """Images and masks with differing names (paired by sorted order), masks stored 0/127/254:
    Table 1 from the validation images, no 3D export."""
    work, res = simulated, simulated / "results"
    volume = tifffile.imread(res / "sim/02_recon/volume.tif")
    truth = tifffile.imread(res / "sim/00_simulate/labels.tif")
    for part, zs in (("train", [*range(4, 20), *range(30, 44)]), ("val", range(22, 28))):
        for sub in ("img", "lab"):
            (work / "ds" / part / sub).mkdir(parents=True)
        for i, z in enumerate(zs):
            tifffile.imwrite(work / f"ds/{part}/img/image_{i:03d}.tif", volume[z])
            write_png(work / f"ds/{part}/lab/mask{i:03d}.png", (truth[z] * 127).astype(np.uint8))
    ds = {"slices": {p: {"images": f"ds/{p}/img/*.tif", "masks": f"ds/{p}/lab/*.png"}
                     for p in ("train", "val")} | {"pairing": "sorted"},
          "label_values": {"background": 0, "alumina": 127, "pt": 254}, "pixel_size_nm": 1.0,
          **LEARN}
    config = {"samples": {"ds": ds}}
    plan = planned_jobs(snakemake(work, config, "-n"))
    assert plan["import_slices"] == 1 and "export" not in plan and "agreement" not in plan
    r = snakemake(work, config)
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads((res / "ds/00_slices/slices.json").read_text())
    assert record["train_slices"] == list(range(30)) and record["val_slices"] == list(range(30, 36))
    assert record["val"][0]["mask"].endswith("ds/val/lab/mask000.png")
    md = (res / "ds/06_evaluate/metrics.md").read_text()
    assert "Dice on the validation region (the 6 validation images)" in md
    assert not (res / "ds/07_export").exists()
    wrong = {**ds, "slices": {**ds["slices"], "pairing": "name"}}
    r = snakemake(work, {"samples": {"ds": wrong}}, "-n")
    assert r.returncode != 0  # a dry run prints the error on stdout
    assert "unpaired files: images without a mask ['image_000.tif'" in r.stdout + r.stderr


def test_bad_annotations_stop_before_any_job(tmp_path):
    labels = np.zeros((10, 16, 16), np.uint8)
    labels[:, 4:8] = 1
    labels[3, 5:7, 5:7] = 2
    io.write_tiff(tmp_path / "rec.tif", np.zeros((10, 16, 16), np.float32), 0.5)
    export_masks(tmp_path, labels, [3])
    base = {"volume": "rec.tif", "labels": "masks", "label_values": NAPARI_VALUES}
    cases = [
        ({**base, "label_values": {"pt": 3, "background": 1}},
         "z0003.png: label values [2] are not in the label encoding (1 = background, 3 = pt)"),
        ({**base, "volume_axes": "yzx"}, "z0003.png: mask of shape (16, 16), the volume's slices "
                                         "are (10, 16)"),
        ({**base, "label_values": {**NAPARI_VALUES, "pt": 9}}, "values [3] are not in the label"),
        ({**base, "truth": "rec.tif"}, "rec.tif: label values of type float32 (not integers)"),
    ]
    export_masks(tmp_path, np.where(labels == 2, 1, labels).astype(np.uint8), [5], "no_pt")
    cases.append(({**base, "labels": "no_pt"}, "no_pt: the labels hold no Pt at all"))
    for sample, message in cases:
        r = snakemake(tmp_path, {"samples": {"v": sample}}, "-n")
        assert r.returncode != 0 and message in r.stdout + r.stderr, (message, r.stdout[-1500:])
    assert not (tmp_path / "results").exists()


def test_an_aligned_tilt_series_skips_alignment(tmp_path):
    rng = np.random.default_rng(0)
    io.write_tiff(tmp_path / "ts.tif", (100 + rng.normal(0, 5, (9, 32, 32))).astype(np.float32), 0.5)
    config = {"samples": {"ali": {"tiltseries": "ts.tif", "aligned": True,
                                  "angles": {"start": -40, "step": 10}}}}
    plan = planned_jobs(snakemake(tmp_path, config, "-n"))
    assert plan == {"import_tiltseries": 1, "reconstruct_slab": 1, "reconstruct": 1, "all": 1}

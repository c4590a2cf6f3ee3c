"""The ensemble of the trained networks through Snakemake: its own segmentation, Table 1 row and
export; the Pt calibration and the clean-up reach the rules' outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from smk import TINY, planned_jobs, snakemake

pytestmark = pytest.mark.workflow


def test_the_ensemble_is_segmented_evaluated_and_exported_like_a_network(tmp_path):
    sample = {**TINY, "segment": {"cleanup": {"alumina_min_nm3": 20.0, "pt_min_nm3": 2.0}},
              "patches": {**TINY["patches"], "train_patches": 32, "seed": 4,
                          "annotation_noise": {"jitter_px": 1.0, "missed_pt_fraction": 0.5,
                                               "missed_pt_diameter_nm": 2.0}},
              "train": {**TINY["train"], "epochs": 1}}
    config = {"samples": {"tiny": sample}, "align": {"enabled": False}}
    targets = ["results/tiny/06_evaluate/metrics.md", "results/tiny/07_export/ensemble/export.json"]
    r = snakemake(tmp_path, config, *targets)
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results" / "tiny"
    md = (res / "06_evaluate/metrics.md").read_text()
    for model in ("unet", "attention_res_unet", "ensemble"):
        assert f"| {model} | " in md
    assert "Precision / recall, pooled over the same voxels:" in md
    assert "Training's best epoch on the whole validation slices" in md
    # the ensemble's row: no epoch, its figures on the same slices with its own calibration
    row = next(line for line in md.splitlines() if line.startswith("| ensemble | — | "))
    assert row != "| ensemble | — | — | — | — | — |"
    rows = (res / "06_evaluate/metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["unet", "attention_res_unet", "ensemble"]
    assert "best_epoch_val_cal_dice_pt" in rows[0]
    ensemble = tifffile.imread(res / "05_segment/ensemble/labels.tif")
    assert ensemble.shape == (48, 48, 48) and ensemble.max() <= 2
    record = json.loads((res / "05_segment/ensemble/segment.json").read_text())
    assert record["cleanup"]["pt_min_nm3"] == 2.0 and "pt_components_removed" in record["cleanup"]
    calibration = json.loads((res / "05_segment/ensemble/calibration.json").read_text())
    assert record["validation"] == {"ensemble": calibration["validation"]}
    assert len(calibration["priors"]) == 3 and calibration["priors"][:2] == [1.0, 1.0]
    assert calibration["validation_slices"] == 3 and not calibration["tta"]
    assert "val_cal_dice_pt" in calibration["validation"]
    assert "throughput:" in (res / "logs/calibrate_ensemble.log").read_text()
    log = (res / "logs/segment_ensemble.log").read_text()
    assert "clean-up:" in log and "components under 2 nm³" in log
    slab_log = (res / "logs/segment_ensemble_slab0.log").read_text()
    assert slab_log.count(": Pt prior") == 2  # both networks' calibrations are applied
    assert f"ensemble Pt prior {calibration['priors'][2]:.4g}" in slab_log  # and the ensemble's
    model = json.loads((res / "05_segment/unet/segment.json").read_text())
    assert set(model["validation"]) == {"unet"}
    assert json.loads((res / "07_export/ensemble/export.json").read_text())["model"] == "ensemble"
    # no speck below the clean-up's sizes survives (1 nm voxels: 2 Pt voxels = 2 nm³)
    from scipy import ndimage

    ids, n = ndimage.label(ensemble == 2, structure=ndimage.generate_binary_structure(3, 1))
    assert n == 0 or np.bincount(ids.ravel())[1:].min() >= 2
    # the annotations rule gives the synthetic sample a person's errors, with the patches' seed
    from stemtomo.learn.patches import simulate_annotation
    from stemtomo.learn.settings import AnnotationNoise

    truth = tifffile.imread(res / "00_simulate/labels.tif")
    annotated = tifffile.imread(res / "03_patches/labels.tif")
    noise = AnnotationNoise(1.0, 4.0, 2.0, 0.5)  # jitter_scale_px: the schema's default
    assert np.array_equal(annotated, simulate_annotation(truth, 12, noise, 1.0, 4))
    clean = simulate_annotation(truth, 12)
    kept = (clean != 255).any(axis=(1, 2))
    assert 0 < (annotated[kept] != clean[kept]).mean() < 0.2
    # switching the ensemble off plans nothing new and drops its targets
    off = {**config, "segment": {"ensemble": False}}
    r = snakemake(tmp_path, off, "-n")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "07_export/ensemble" not in r.stdout and "segment_slab" not in planned_jobs(r)

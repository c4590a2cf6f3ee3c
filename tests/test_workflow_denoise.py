"""The denoise stage through Snakemake: off by default it plans nothing new; on, its jobs sit
between reconstruct and patches, every later stage reads its volume, and a tiny sample is
denoised."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import tifffile
import yaml

from smk import ROOT, TINY, nothing_to_do, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

# three networks and their ensemble (segment.ensemble) segmented, evaluated and exported
SHIPPED_JOBS = {"simulate": 1, "import_tiltseries": 1, "align": 1, "reconstruct_slab": 1,
                "reconstruct": 1, "annotations": 1, "patches": 1, "train": 3,
                "calibrate_ensemble": 1, "segment_slab": 4,
                "segment": 4, "evaluate_model": 4, "agreement": 1, "evaluate": 1, "export": 4,
                "all": 1}


def shipped() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def job_inputs(stdout: str, rule: str) -> list[str]:
    """The inputs a dry run lists for every job of `rule`."""
    return re.findall(rf"^rule {rule}:\n(?:    .*\n)*?    input: (.*)$", stdout, re.M)


def test_off_by_default_the_shipped_config_plans_the_same_jobs(tmp_path):
    r = snakemake(tmp_path, shipped(), "-n")
    assert r.returncode == 0, r.stderr[-3000:]
    assert planned_jobs(r) == SHIPPED_JOBS
    assert "02b_denoise" not in r.stdout


def test_enabled_it_runs_between_reconstruct_and_every_later_stage(tmp_path):
    config = shipped()
    config["denoise"] = {"enabled": True, "splits": 3}
    config["reconstruct"]["slabs"] = 2
    r = snakemake(tmp_path, config, "-n")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = planned_jobs(r)
    assert jobs == {**SHIPPED_JOBS, "reconstruct_slab": 2, "denoise_split": 6, "denoise": 1}
    denoised = "results/demo/02b_denoise/volume.tif"
    for rule in ("annotations", "patches", "segment_slab", "segment", "evaluate_model",
                 "agreement", "export"):
        inputs = job_inputs(r.stdout, rule)
        assert inputs and all(denoised in i for i in inputs), rule
        assert not any("02_recon/volume.tif" in i for i in inputs), rule
    assert all("01_align/tiltseries.tif" in i for i in job_inputs(r.stdout, "denoise_split"))


def test_with_input_both_the_networks_read_the_reconstruction_and_the_denoised_volume(tmp_path):
    config = shipped()
    config["denoise"] = {"enabled": True, "input": "both"}
    r = snakemake(tmp_path, config, "-n")
    assert r.returncode == 0, r.stderr[-3000:]
    assert planned_jobs(r) == {**SHIPPED_JOBS, "denoise_split": 2, "denoise": 1}
    raw, denoised = "results/demo/02_recon/volume.tif", "results/demo/02b_denoise/volume.tif"
    for rule in ("patches", "segment_slab"):
        inputs = job_inputs(r.stdout, rule)
        assert inputs and all(raw in i and denoised in i for i in inputs), rule
    for rule in ("annotations", "segment", "evaluate_model", "export"):  # shown: the denoised
        inputs = job_inputs(r.stdout, rule)
        assert inputs and all(denoised in i and raw not in i for i in inputs), rule


def test_a_volume_sample_cannot_be_denoised(tmp_path):
    (tmp_path / "v.npy").write_bytes(b"")
    config = {"samples": {"rec": {"volume": "v.npy", "denoise": {"enabled": True}}}}
    r = snakemake(tmp_path, config, "-n")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "Job stats" not in out
    assert "samples.rec.denoise.enabled: denoising splits the tilt series" in out
    assert "fix: set samples.rec.denoise: {enabled: false}" in out


def test_a_tiny_sample_is_denoised(tmp_path):
    sample = copy.deepcopy(TINY)
    sample["train"]["models"] = ["unet"]
    sample["denoise"] = {"enabled": True, "epochs": 2, "base": 4, "depth": 2, "patch_size": 16,
                         "patches_per_epoch": 32, "batch_size": 8}
    config = {"samples": {"tiny": sample}}
    # up to the stage itself (the dry runs above show every later stage reading its volume)
    target = "results/tiny/02b_denoise/denoise.json"
    r = snakemake(tmp_path, config, target)
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results" / "tiny"
    for f in ("02b_denoise/volume.tif", "02b_denoise/denoise.json", "02b_denoise/comparison.png"):
        assert (res / f).stat().st_size > 0, f
    assert not (res / "02b_denoise/checkpoint.pt").exists()  # finished: nothing to resume
    assert not list((res / "02b_denoise").glob("splits/*.npy"))  # temporary
    raw = tifffile.imread(res / "02_recon/volume.tif")
    with tifffile.TiffFile(res / "02b_denoise/volume.tif") as tif:
        denoised = tif.asarray()
        assert tif.imagej_metadata["unit"] == "nm"
    assert denoised.shape == raw.shape and denoised.dtype == np.float32
    assert np.all(np.isfinite(denoised)) and not np.array_equal(denoised, raw)
    record = json.loads((res / "02b_denoise/denoise.json").read_text())
    n_tilts = len(np.loadtxt(res / "01_align/tiltseries.tlt"))
    assert sorted(sum(record["subsets"], [])) == list(range(n_tilts))
    assert record["splits"] == 2 and record["epochs"] == 2 and len(record["loss"]) == 2
    assert record["reconstruction"]["algorithm"] == "mlem" and record["mvoxel_per_s"] > 0
    assert record["seconds"]["total"] >= record["seconds"]["train"] > 0
    assert "provenance" in record
    log = (res / "logs/denoise.log").read_text()
    assert "throughput:" in log and "Mvoxel/s" in log
    assert nothing_to_do(snakemake(tmp_path, config, "-n", target))
    # a denoise setting reruns denoising (and its temporary sub-reconstructions), never the
    # reconstruction
    sample["denoise"]["epochs"] = 3
    assert planned_jobs(snakemake(tmp_path, config, "-n", target)) == {"denoise": 1,
                                                                        "denoise_split": 2}
    # input both: the reconstruction and the denoised volume as two input sources of the
    # network; choosing it reruns nothing of the denoising
    sample["denoise"].update(epochs=2, input="both")
    labels = "results/tiny/05_segment/unet/labels.tif"
    assert planned_jobs(snakemake(tmp_path, config, "-n", labels)) == {
        "annotations": 1, "patches": 1, "train": 1, "segment_slab": 1, "segment": 1}
    r = snakemake(tmp_path, config, labels)
    assert r.returncode == 0, r.stderr[-3000:]
    patches = json.loads((res / "03_patches/patches.json").read_text())
    assert patches["sources"] == 2 and patches["channels"] == 2  # 2D (patches.context 0)
    with np.load(res / "03_patches/val.npz") as val:
        assert val["images"].shape[1] == 2
    assert patches["source_files"] == [f"{res.relative_to(tmp_path)}/02_recon/volume.tif",
                                       f"{res.relative_to(tmp_path)}/02b_denoise/volume.tif"]
    assert len({json.dumps(n) for n in patches["source_normalisations"]}) == 2
    assert tifffile.imread(tmp_path / labels).shape == raw.shape
    assert " + " in (res / "logs/patches.log").read_text()

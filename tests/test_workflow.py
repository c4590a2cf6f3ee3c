"""The workflow through Snakemake itself: DAG, lint, a demo run, reruns, and failures."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import tifffile
import yaml

from smk import ROOT, TINY, nothing_to_do, planned_jobs, snakemake

pytestmark = pytest.mark.workflow


def test_dry_run_of_the_shipped_config_shows_the_dag(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    r = snakemake(tmp_path, config, "-n")
    assert r.returncode == 0, r.stderr
    assert planned_jobs(r) == {"simulate": 1, "import_tiltseries": 1, "align": 1,
                               "reconstruct_slab": 1, "reconstruct": 1, "annotations": 1,
                               "patches": 1, "train": 3, "calibrate_ensemble": 1,
                               "segment_slab": 4, "segment": 4, "evaluate_model": 4,
                               "agreement": 1, "evaluate": 1, "export": 4,
                               "all": 1}  # three networks + ensemble


def test_slurm_profile_gives_gpu_rules_a_gpu_and_their_memory(tmp_path):
    """The shipped SLURM profile as a user gets it (a dry run submits nothing): GPU rules ask
    for one GPU on the GPU partition with their own memory and time, the rest the defaults."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    r = snakemake(tmp_path, config, "-n", "--profile", str(ROOT / "workflow/profiles/slurm"))
    assert r.returncode == 0, r.stderr[-3000:]
    resources = {}
    for m in re.finditer(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", r.stdout, re.M):
        resources[m.group(1)] = dict(kv.split("=", 1) for kv in m.group(2).split(", "))
    for rule, mem in (("align", "32000"), ("reconstruct_slab", "64000"), ("train", "32000"),
                      ("segment_slab", "32000"), ("calibrate_ensemble", "16000")):
        assert resources[rule]["gpu"] == "1" and resources[rule]["slurm_partition"] == "gpu", rule
        assert resources[rule]["mem_mb"] == mem, rule
    assert "gpu" not in resources["patches"] and resources["patches"]["slurm_partition"] == "cpu"


def test_lint_is_clean(tmp_path):
    r = snakemake(tmp_path, yaml.safe_load((ROOT / "config.yaml").read_text()), "--lint")
    assert r.returncode == 0, r.stdout + r.stderr


def test_demo_runs_end_to_end_and_reruns_only_what_changed(tmp_path):
    config = {"samples": {"tiny": TINY}}
    r = snakemake(tmp_path, config)
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results" / "tiny"
    for f in ("00_simulate/tiltseries.tif", "00_simulate/labels.tif", "00_simulate/phantom.tif",
              "00_simulate/truth.json", "00_simulate/overview.png", "00_import/tiltseries.tif",
              "00_import/angles.txt", "00_import/meta.json", "00_import/qc.png",
              "01_align/tiltseries.tif", "01_align/alignment.json", "01_align/tiltseries.xf",
              "01_align/tiltseries.tlt", "01_align/qc.png", "02_recon/volume.tif",
              "02_recon/recon.json", "02_recon/orthoslices.png", "03_patches/train.npz",
              "03_patches/val.npz", "03_patches/patches.json", "03_patches/patches.png",
              "04_models/unet/model.pt", "04_models/unet/history.csv", "04_models/unet/curves.png",
              "04_models/attention_res_unet/model.pt", "05_segment/unet/labels.tif",
              "05_segment/attention_res_unet/segment.json", "06_evaluate/metrics.csv",
              "06_evaluate/metrics.md", "06_evaluate/particles.png", "06_evaluate/unet_errors.png",
              "06_evaluate/unet_particles.csv", "06_evaluate/truth_particles.csv",
              "07_export/unet/render.png", "07_export/unet/scene.py", "07_export/unet/pt.vtp",
              "07_export/unet/alumina.stl", "07_export/attention_res_unet/volume.vti"):
        assert (res / f).stat().st_size > 0, f
    with tifffile.TiffFile(res / "00_import/tiltseries.tif") as tif:
        stack = tif.asarray()
        assert tif.imagej_metadata["unit"] == "nm"
    assert stack.shape == (31, 48, 48) and stack.dtype == np.float32
    angles = np.loadtxt(res / "00_import/angles.txt")
    assert np.all(np.diff(angles) > 0) and angles[0] == -60
    meta = json.loads((res / "00_import/meta.json").read_text())
    assert meta["pixel_size_nm"] == pytest.approx(1.0) and meta["pixel_size_source"] == "file header"
    labels = tifffile.imread(res / "00_simulate/labels.tif")
    assert labels.shape == (48, 48, 48) and set(np.unique(labels)) == {0, 1, 2}
    for log in ("simulate", "import", "align", "reconstruct", "reconstruct_slab0", "patches"):
        assert "throughput" in (res / "logs" / f"{log}.log").read_text()
    # The alignment recovered the simulated geometry (coarse check; accuracy is in test_align).
    truth = json.loads((res / "00_simulate/truth.json").read_text())
    alignment = json.loads((res / "01_align/alignment.json").read_text())
    assert abs(alignment["axis_angle_deg"] - truth["axis_angle_deg"]) < 0.3
    assert len(alignment["tilts"]) == 31 and len(np.loadtxt(res / "01_align/tiltseries.xf")) == 31
    assert tifffile.imread(res / "01_align/tiltseries.tif").shape == (31, 48, 48)
    volume = tifffile.imread(res / "02_recon/volume.tif")
    assert volume.shape == (48, 48, 48) and volume.dtype == np.float32
    recon = json.loads((res / "02_recon/recon.json").read_text())
    assert recon["backend"] == "joseph-cpu" and np.all(np.diff(recon["residuals"]) < 0)
    prov = recon["provenance"]  # every JSON sidecar says what made it
    assert prov["stemtomo"].startswith("0.") and prov["rule"] == "reconstruct"
    assert {"numpy", "tifffile"} <= set(prov["packages"])
    prov = json.loads((res / "03_patches/patches.json").read_text())["provenance"]
    assert prov["rule"] == "patches" and prov["params"]["settings"]["patch_size"] == 32
    # Nothing to redo; a stage's setting reruns that stage and what follows, never what precedes.
    assert nothing_to_do(snakemake(tmp_path, config, "-n"))
    # Key order, defaults written out, and run-time settings (memory, batch size) change nothing;
    # asking for volume.mrc runs only the rule that writes it.
    same = {"reconstruct": {"max_memory_fraction": 0.5, "iterations": 50, "algorithm": "mlem"},
            "segment": {"batch_size": 2}, "samples": {"tiny": dict(reversed(TINY.items()))}}
    assert nothing_to_do(snakemake(tmp_path, same, "-n"))
    mrc = {"samples": {"tiny": TINY}, "reconstruct": {"mrc": True}}
    assert planned_jobs(snakemake(tmp_path, mrc, "-n")) == {"reconstruct_mrc": 1, "all": 1}
    patches = json.loads((res / "03_patches/patches.json").read_text())
    assert set(patches["train_slices"]).isdisjoint(patches["val_slices"])
    assert np.load(res / "03_patches/train.npz")["images"].shape == (64, 1, 32, 32)
    assert not (res / "04_models/unet/checkpoint.pt").exists()  # removed once finished
    seg = tifffile.imread(res / "05_segment/unet/labels.tif")
    assert seg.shape == (48, 48, 48) and seg.dtype == np.uint8 and seg.max() <= 2
    # Table 1: one row per model, evaluated on the validation slab only
    md = (res / "06_evaluate/metrics.md").read_text()
    assert "| Model | γ-Alumina | Pt NPs | Background/pores |" in md
    assert f"validation slab z = {min(patches['val_slices'])}–{max(patches['val_slices'])}" in md
    rows = (res / "06_evaluate/metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["unet", "attention_res_unet", "ensemble"]
    assert "pt_hd95_nm" in rows[0] and "detection_f1" in rows[0]
    exported = json.loads((res / "07_export/unet/export.json").read_text())
    assert exported["alumina"]["closed"] and exported["pt"]["closed"]
    # the export's particles are the evaluation's (same components, same ids)
    table = (res / "06_evaluate/unet_particles.csv").read_text().splitlines()
    assert exported["particles"] == len(table) - 1
    assert exported["renderer"].startswith("paraview" if shutil.which("pvbatch") else "vtk")
    evaluation = {"evaluate_model": 3, "agreement": 1, "evaluate": 1,
                  "export": 3}  # two networks + ensemble
    after_align = {"reconstruct_slab": 1, "reconstruct": 1, "annotations": 1, "patches": 1,
                   "train": 2, "calibrate_ensemble": 1, "segment_slab": 3, "segment": 3,
                   **evaluation, "all": 1}
    changed = {"samples": {"tiny": TINY}, "import": {"normalize": "none"}}
    assert planned_jobs(snakemake(tmp_path, changed, "-n")) == {
        "import_tiltseries": 1, "align": 1, **after_align}
    changed = {"samples": {"tiny": TINY}, "align": {"upsample": 30}}
    assert planned_jobs(snakemake(tmp_path, changed, "-n")) == {"align": 1, **after_align}
    changed = {"samples": {"tiny": TINY}, "reconstruct": {"iterations": 20}}
    assert planned_jobs(snakemake(tmp_path, changed, "-n")) == after_align
    changed = {"samples": {"tiny": TINY}, "patches": {"pt_fraction": 0.5}}
    segmentation = {"calibrate_ensemble": 1, "segment_slab": 3, "segment": 3, **evaluation,
                    "all": 1}
    assert planned_jobs(snakemake(tmp_path, changed, "-n")) == {"patches": 1, "train": 2,
                                                               **segmentation}
    changed = {"samples": {"tiny": TINY}, "train": {"lr": 0.01}}
    assert planned_jobs(snakemake(tmp_path, changed, "-n")) == {"train": 2, **segmentation}
    changed = {"samples": {"tiny": TINY}, "train": {"per_model": {"unet": {"lr": 0.01}}}}
    assert planned_jobs(snakemake(tmp_path, changed, "-n")) == {  # that model's and the ensemble's
        "train": 1, "calibrate_ensemble": 1, "segment_slab": 2, "segment": 2,
        "evaluate_model": 2, "agreement": 1,
        "evaluate": 1, "export": 2, "all": 1}
    changed = {"samples": {"tiny": TINY}, "segment": {"tta": True}}
    assert planned_jobs(snakemake(tmp_path, changed, "-n")) == segmentation
    changed = {"samples": {"tiny": TINY}, "segment": {"slabs": 3}}
    assert planned_jobs(snakemake(tmp_path, changed, "-n"))["segment_slab"] == 9
    reseeded = {"samples": {"tiny": {**TINY, "simulate": {**TINY["simulate"], "seed": 7}}}}
    assert planned_jobs(snakemake(tmp_path, reseeded, "-n")) == {
        "simulate": 1, "import_tiltseries": 1, "align": 1, **after_align}
    # Three slab jobs and the gather give exactly the single-job volume.
    sliced = {"samples": {"tiny": TINY}, "reconstruct": {"slabs": 3}}
    assert planned_jobs(snakemake(tmp_path, sliced, "-n"))["reconstruct_slab"] == 3
    r = snakemake(tmp_path, sliced)
    assert r.returncode == 0, r.stderr[-2000:]
    assert np.array_equal(tifffile.imread(res / "02_recon/volume.tif"), volume)
    # The report collects the figures.
    r = snakemake(tmp_path, config, "--report", str(tmp_path / "report.html"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "report.html").stat().st_size > 10_000
    # A network that misses a class in every epoch fails its job and leaves no model behind.
    strict = {"samples": {"tiny": {**TINY, "train": {**TINY["train"], "min_class_dice": 1.0}}}}
    r = snakemake(tmp_path, strict, "results/tiny/04_models/unet/model.pt")
    assert r.returncode != 0 and "collapsed onto the other classes" in r.stderr, r.stderr[-2000:]
    assert "train.min_class_dice: 0 accepts" in r.stderr
    assert not (res / "04_models/unet/model.pt").exists()


def test_alignment_can_be_skipped(tmp_path):
    config = {"samples": {"tiny": TINY}, "align": {"enabled": False}}
    r = snakemake(tmp_path, config, "-n")
    assert r.returncode == 0, r.stderr[-2000:]
    assert planned_jobs(r) == {"simulate": 1, "import_tiltseries": 1, "reconstruct_slab": 1,
                               "reconstruct": 1, "annotations": 1, "patches": 1, "train": 2,
                               "calibrate_ensemble": 1, "segment_slab": 3, "segment": 3, "evaluate_model": 3,
                               "agreement": 1, "evaluate": 1, "export": 3, "all": 1}
    assert "results/tiny/00_import/tiltseries.tif" in r.stdout.split("rule reconstruct_slab")[1]


def test_config_mistakes_stop_before_any_job(tmp_path):
    r = snakemake(tmp_path, {"samples": {"tiny": {"simulate": {"sizee": 48}}}})
    assert r.returncode != 0
    assert "samples.tiny.simulate.sizee: unknown key" in r.stderr
    r = snakemake(tmp_path, {"samples": {"m": {"tiltseries": "data/missing.mrc"}}})
    assert r.returncode != 0
    assert "samples.m.tiltseries: file not found: data/missing.mrc" in r.stderr
    r = snakemake(tmp_path, {"samples": {"a": {"simulate": {}, "models_from": "nope"}}})
    assert r.returncode != 0 and "samples.a.models_from: 'nope' is not a sample with labels" in r.stderr
    assert not (tmp_path / "results").exists()


def test_measured_samples_import_and_bad_input_leaves_no_output(tmp_path):
    rng = np.random.default_rng(0)
    data = (100 + rng.normal(0, 5, (9, 32, 32))).astype(np.float32)
    (tmp_path / "data").mkdir()
    tifffile.imwrite(tmp_path / "data/good.tif", data[::-1], imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "nm"})
    (tmp_path / "data/good.rawtlt").write_text("\n".join(str(a) for a in range(40, -50, -10)))
    np.save(tmp_path / "data/bad.npy", data)
    config = {"samples": {"good": {"tiltseries": "data/good.tif", "angles": "data/good.rawtlt"},
                          "bad": {"tiltseries": "data/bad.npy", "pixel_size_nm": 0.5,
                                  "angles": {"start": -40, "step": 10, "stop": 30}}}}
    r = snakemake(tmp_path, config, "--keep-going")
    assert r.returncode != 0
    good = tmp_path / "results/good/00_import"
    np.testing.assert_allclose(np.loadtxt(good / "angles.txt"), np.arange(-40, 50, 10))
    assert json.loads((good / "meta.json").read_text())["pixel_size_nm"] == pytest.approx(0.5)
    bad = tmp_path / "results/bad"
    leftovers = list((bad / "00_import").iterdir()) if (bad / "00_import").exists() else []
    assert leftovers == []  # not even hidden temporary files
    log = (bad / "logs/import.log").read_text()
    assert "data/bad.npy: 9 images but 8 angles" in log and "fix:" in log

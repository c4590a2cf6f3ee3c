"""Through Snakemake itself, without --show-failed-logs: a failing job's message (problem and fix)
reaches the terminal, bad input is never retried (GPU rules retry a GPU out of memory only), radian
angles stop the import, labels that cannot fit the reconstruction and an unwritable results folder
stop the run before any job; nothing that looks finished is left behind."""

from __future__ import annotations

import numpy as np
import pytest
from test_atomic_writes import unwritable

from smk import ROOT, planned_jobs, snakemake

pytestmark = pytest.mark.workflow

PROFILE = str(ROOT / "workflow" / "profiles" / "default")


def measured(tmp_path, n=31, size=32, **sample) -> dict:
    """A measured sample: n smooth tilts of size² px as .npy, pixel size in the config."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    data = np.stack([100 + 50 * np.exp(-((y - 16) ** 2 + (x - 16 - 4 * np.sin(a)) ** 2) / 20)
                     + rng.normal(0, 1, (size, size)) for a in np.linspace(-1, 1, n)])
    (tmp_path / "data").mkdir(exist_ok=True)
    np.save(tmp_path / "data/ts.npy", data.astype(np.float32))
    return {"tiltseries": "data/ts.npy", "pixel_size_nm": 0.5, **sample}


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_radian_angles_stop_the_import_with_the_message_on_the_terminal(tmp_path):
    config = {"samples": {"m": measured(tmp_path, angles={"start": -1.2, "step": 0.08})}}
    r = snakemake(tmp_path, config, "--profile", PROFILE, "results/m/00_import/meta.json")
    assert r.returncode != 0 and "--show-failed-logs" not in r.args
    assert ("stemtomo: rule import_tiltseries (sample=m) failed:\nconfig samples.m.angles: the 31 "
            "tilt angles run from -1.2 to 1.2: as degrees that is a ±1.2° series with 0.08° steps, "
            "almost certainly radians (±68.8° with 4.58° steps)\n  fix: if they are radians, set "
            "`samples.m.import.angles_unit: radians` (they are converted to degrees); if the range "
            "really is this narrow, set `samples.m.import.angles_unit: degrees`\n"
            "  (log: results/m/logs/import.log)") in r.stderr
    assert r.stderr.count("localrule import_tiltseries:") == 1  # not retried (profile: no retries)
    assert "Trying to restart" not in r.stderr
    assert leftovers(tmp_path / "results/m/00_import") == []  # not even hidden partial files
    config["samples"]["m"]["import"] = {"angles_unit": "radians"}  # the fix the message gives
    r = snakemake(tmp_path, config, "results/m/00_import/meta.json")
    assert r.returncode == 0, r.stderr[-2000:]
    angles = np.loadtxt(tmp_path / "results/m/00_import/angles.txt")
    np.testing.assert_allclose(angles, np.degrees(np.arange(31) * 0.08 - 1.2), atol=1e-4)


def test_bad_input_in_a_gpu_rule_is_not_run_again_by_its_retry(tmp_path):
    config = {"samples": {"m": measured(tmp_path, angles={"start": -60, "step": 4})},
              "align": {"binning": 5}}  # does not divide 32 px: an InputError in align
    r = snakemake(tmp_path, config, "--profile", PROFILE, "results/m/01_align/alignment.json")
    assert r.returncode != 0
    message = ("align.binning: 5 does not divide the 32×32 px images\n  fix: use auto, a divisor of "
               "both sizes, or crop the images at import (import.crop) to a multiple of it")
    assert f"stemtomo: rule align (sample=m) failed:\n{message}" in r.stderr
    # Snakemake restarts the GPU rule (retries: 1); the runner refuses to run it again
    assert r.stderr.count("Trying to restart job") == 1
    assert ("stemtomo: rule align (sample=m): attempt 2 not run: attempt 1 failed on bad input, "
            f"which running again cannot change:\n{message}") in r.stderr
    assert "attempt 2 not run" in (tmp_path / "results/m/logs/align.log").read_text()
    assert r.stderr.count("localrule import_tiltseries:") == 1
    assert leftovers(tmp_path / "results/m/01_align") == []


def test_labels_that_cannot_fit_the_reconstruction_stop_the_run_before_any_job(tmp_path):
    import tifffile

    sample = measured(tmp_path, angles={"start": -60, "step": 4}, labels="data/labels.tif")
    labels = np.full((32, 32, 32), 255, np.uint8)
    labels[16, :4], labels[16, 4:6] = 1, 2
    tifffile.imwrite(tmp_path / "data/labels.tif", labels, photometric="minisblack")
    config = {"samples": {"m": {**sample, "import": {"binning": 2}}}}
    r = snakemake(tmp_path, config, "-n")
    assert r.returncode != 0 and not planned_jobs(r)
    assert ("config samples.m.labels: data/labels.tif: labels have shape (z, y, x) = (32, 32, 32), "
            "but the reconstruction will be (16, 16, 16): z 32 ≠ 16 (reconstruct.height: null (the "
            "width x)); y 32 ≠ 16 (the images' 32 rows, binned by samples.m.import.binning: 2); x 32 "
            "≠ 16 (the images' 32 columns, binned by samples.m.import.binning: 2)") in \
        r.stdout + r.stderr  # a dry run prints it on stdout
    r = snakemake(tmp_path, config)
    assert r.returncode != 0 and "samples.m.labels: data/labels.tif: labels have shape" in r.stderr
    assert not (tmp_path / "results").exists()
    config = {"samples": {"m": sample}}  # labels made for the unbinned reconstruction: accepted
    r = snakemake(tmp_path, config, "-n")
    assert r.returncode == 0, r.stderr[-2000:]
    assert planned_jobs(r)["patches"] == 1


def test_an_unwritable_results_folder_is_named_before_any_job(tmp_path):
    config = {"samples": {"m": measured(tmp_path, angles={"start": -60, "step": 4})}}
    with unwritable(tmp_path / "results"):
        r = snakemake(tmp_path, config, "results/m/00_import/meta.json")
    assert r.returncode != 0
    assert f"{tmp_path}/results: cannot write results here (" in r.stderr
    assert "fix: make it writable for this user (e.g. chmod -R u+w" in r.stderr
    assert "localrule import_tiltseries" not in r.stderr and "Traceback" not in r.stderr
    assert leftovers(tmp_path / "results") == []

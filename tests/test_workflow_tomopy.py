"""Through Snakemake: the tiny demo-like sample reconstructed with `reconstruct.backend: tomopy`,
end to end (reconstruction → patches → network → segmentation → evaluation → export)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from test_tomopy import MISSING

from conftest import stage
from smk import TINY, snakemake
from stemtomo.core.readers import read_angle_file, read_tiltseries
from stemtomo.recon.reconstruct import reconstruct
from stemtomo.recon.settings import ReconstructSettings

pytestmark = [pytest.mark.workflow, pytest.mark.skipif(MISSING is not None, reason=str(MISSING))]


def test_tiny_sample_end_to_end_with_the_tomopy_backend(tmp_path):
    sample = {**TINY, "train": {**TINY["train"], "models": ["unet"], "epochs": 1}}  # one quick net
    r = snakemake(tmp_path, {"samples": {"tiny": sample}, "reconstruct": {"backend": "tomopy"}})
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results" / "tiny"
    record = json.loads((res / "02_recon/recon.json").read_text())
    assert record["backend"] == "tomopy" and record["algorithm"] == "mlem"
    volume = tifffile.imread(res / "02_recon/volume.tif")
    assert volume.shape == (48, 48, 48) and np.isfinite(volume).all() and volume.min() >= 0
    log = (res / "logs/reconstruct_slab0.log").read_text()
    assert "TomoPy mlem" in log and "throughput: mlem on tomopy" in log  # progress, throughput
    # The same volume as the projector loop gives from the same aligned series.
    series = read_tiltseries(res / "01_align/tiltseries.tif").data
    angles = read_angle_file(res / "01_align/tiltseries.tlt")
    joseph, _ = reconstruct(series, angles, stage(ReconstructSettings, backend="joseph-cpu"))
    assert np.corrcoef(volume.ravel(), joseph.ravel())[0, 1] > 0.98
    # ... and the stages after it ran on it.
    for f in ("05_segment/unet/labels.tif", "06_evaluate/metrics.md", "07_export/unet/export.json"):
        assert (res / f).exists(), f

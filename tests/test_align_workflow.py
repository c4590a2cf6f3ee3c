"""Bad frames through Snakemake (issue 15, item 3): a series with one noise-only image aligns
without it; one with too many stops at the align rule with the list and the fix, and leaves no
aligned series, alignment.json or figure that could pass for a finished result."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import simulate_params
from smk import snakemake
from stemtomo.core import io
from stemtomo.simulate.acquisition import simulate

pytestmark = pytest.mark.workflow


def noisy_series(path, sim, bad, seed: int = 1) -> None:
    """The tiny sample's raw series with `bad` tilts replaced by smoothed noise of the image's
    own mean and spread."""
    rng = np.random.default_rng(seed)
    stack = sim.tiltseries.copy()
    for i in bad:
        noise = ndimage.gaussian_filter(rng.normal(size=stack[i].shape), 2.0)
        stack[i] = stack[i].mean() + noise / noise.std() * stack[i].std()
    io.write_tiff(path, stack, 1.0)


def test_one_bad_frame_costs_one_tilt_and_too_many_stop_the_rule(tmp_path):
    sim = simulate(simulate_params(size=48, pixel_size_nm=1.0, tilt={"start": -60, "stop": 60, "step": 4}))
    (tmp_path / "data").mkdir()
    noisy_series(tmp_path / "data/one.tif", sim, [15])
    noisy_series(tmp_path / "data/many.tif", sim, [3, 9, 20, 27])
    angles = [float(a) for a in sim.angles]
    config = {"samples": {name: {"tiltseries": f"data/{name}.tif", "angles": angles}
                          for name in ("one", "many")},
              "align": {"projection_matching": False}}
    targets = [f"results/{name}/01_align/alignment.json" for name in ("one", "many")]
    r = snakemake(tmp_path, config, "--keep-going", *targets)
    assert r.returncode != 0
    one = json.loads((tmp_path / "results/one/01_align/alignment.json").read_text())
    assert [t["index"] for t in one["tilts"] if t["bad"]] == [15]
    assert [t["index"] for t in one["tilts"] if not t["kept"]] == [15]
    assert one["self_consistency"]["aligned"] < one["self_consistency"]["raw"]
    many = tmp_path / "results/many/01_align"
    assert not many.exists() or list(many.iterdir()) == []  # nothing that looks finished
    log = (tmp_path / "results/many/logs/align.log").read_text()
    assert ("results/many/00_import/tiltseries.tif: alignment flagged 4 of 31 tilts as unusable "
            "(13 %, more than align.max_flagged_fraction = 0.1): 3 (-48.0°, resembles none of "
            "its neighbours)") in log
    assert "fix: look at these images; leave out those that are blank or noise with " \
           "import.exclude_angles: [-48.0, -24.0, 20.0, 48.0]" in log
    # The terminal shows the problem and the fix too.
    assert ("stemtomo: rule align (sample=many) failed:\nresults/many/00_import/tiltseries.tif: "
            "alignment flagged 4 of 31 tilts as unusable") in r.stderr
    assert "import.exclude_angles: [-48.0, -24.0, 20.0, 48.0]" in r.stderr

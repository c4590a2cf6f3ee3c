"""Bad frames in a tilt series (issue 15, item 3): one noise-only image costs one tilt, its
neighbours correlate across it; too many flagged tilts stop the stage with the list and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import simulate_params, stage
from stemtomo.align.coarse import screen_and_precentre
from stemtomo.align.settings import AlignSettings
from stemtomo.align.stage import align_tiltseries
from stemtomo.align.working import prepare
from stemtomo.core.errors import InputError
from stemtomo.simulate.acquisition import simulate


@pytest.fixture(scope="module")
def tiny():
    """The workflow tests' tiny sample: 48 px, 31 tilts over ±60°."""
    return simulate(simulate_params(size=48, pixel_size_nm=1.0, tilt={"start": -60, "stop": 60, "step": 4}))


def with_noise(sim, indices, seed: int = 1) -> np.ndarray:
    """Tilts replaced by noise of the image's own mean and spread, smoothed so that it looks like
    structure (it passes the blank-frame test) but resembles no other image."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    stack = sim.tiltseries.copy()
    for i in indices:
        noise = ndimage.gaussian_filter(rng.normal(size=stack[i].shape), 2.0)
        stack[i] = stack[i].mean() + noise / noise.std() * stack[i].std()
    return stack


def shift_rms(sim, res) -> float:
    err = np.linalg.norm(res.shifts_yx - np.asarray(sim.truth["shifts_yx_px"]), axis=1)[~res.bad]
    return float(np.sqrt(np.mean(err**2)))


@pytest.mark.parametrize("bad", [[15], [14, 15], [0], [22]],
                         ids=["the 0° reference", "two in a row at 0°", "first tilt", "one at 28°"])
def test_a_noise_frame_costs_only_itself(tiny, bad):
    res = align_tiltseries(with_noise(tiny, bad), tiny.angles,
                           stage(AlignSettings, projection_matching=False))
    assert np.flatnonzero(res.bad).tolist() == bad
    assert shift_rms(tiny, res) <= 0.3
    assert abs(res.axis_angle_deg - tiny.truth["axis_angle_deg"]) <= 0.3
    assert res.history["coarse"]["screened_tilts"] == bad  # set aside before the chain


def test_the_precentring_does_not_follow_the_chain_s_reference(tiny):
    """A noise frame at 0° moves the chain's reference to -4°; the pre-centred copy must stay
    where it was (centred on the series' mean position), or the common line of a field-filling
    object sees other parts of it (it moved 3 px and the axis 0.9° before)."""
    s = stage(AlignSettings, projection_matching=False)

    def coarse(stack):
        work = prepare(stack, 1)
        return screen_and_precentre(work, tiny.angles, np.ones(len(work), bool), s.bandpass,
                                    s.taper, s.bad_quality)[1]

    clean, noisy = coarse(tiny.tiltseries), coarse(with_noise(tiny, [15]))
    assert clean.precentred and noisy.precentred and noisy.outliers.tolist() == [i == 15 for i in range(31)]
    others = np.arange(31) != 15
    assert np.abs(noisy.shifts[others] - clean.shifts[others]).max() <= 1.0


def test_too_many_flagged_tilts_stop_with_the_list_and_the_fix(tiny):
    bad = [3, 9, 20, 27]  # 4 of 31: 13 % > 10 %
    stack = with_noise(tiny, bad)
    with pytest.raises(InputError) as exc:
        align_tiltseries(stack, tiny.angles, stage(AlignSettings, projection_matching=False),
                         source="results/s/00_import/tiltseries.tif")
    msg = str(exc.value)
    assert msg.startswith("results/s/00_import/tiltseries.tif: alignment flagged 4 of 31 tilts as "
                          "unusable (13 %, more than align.max_flagged_fraction = 0.1): ")
    for i in bad:
        assert f"{i} ({tiny.angles[i]:+.1f}°, resembles none of its neighbours)" in msg
    assert "fix: look at these images; leave out those that are blank or noise with " \
           "import.exclude_angles: [-48.0, -24.0, 20.0, 48.0]" in msg
    assert "raise align.max_flagged_fraction" in msg
    # Allowed more, the same series aligns without them.
    res = align_tiltseries(stack, tiny.angles,
                           stage(AlignSettings, projection_matching=False, max_flagged_fraction=0.2))
    assert np.flatnonzero(res.bad).tolist() == bad and shift_rms(tiny, res) <= 0.3

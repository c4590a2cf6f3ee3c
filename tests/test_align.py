"""Alignment accuracy against the simulated truth, and the awkward series users bring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import simulate_params, stage
from stemtomo.align.settings import AlignSettings
from stemtomo.align.stage import align_tiltseries, apply_alignment
from stemtomo.align.translations import integer_chain
from stemtomo.core import geometry
from stemtomo.core.errors import InputError
from stemtomo.simulate.acquisition import simulate
from stemtomo.tomo import joseph


def settings(**overrides) -> AlignSettings:
    return stage(AlignSettings, **overrides)


def errors(sim, result) -> dict:
    truth = sim.truth
    err = np.linalg.norm(result.shifts_yx - np.asarray(truth["shifts_yx_px"]), axis=1)[~result.bad]
    return {"axis_angle": abs(result.axis_angle_deg - truth["axis_angle_deg"]),
            "axis_offset": abs(result.axis_offset_px - truth["axis_offset_px"]),
            "shift_rms": float(np.sqrt(np.mean(err**2))), "shift_max": float(err.max())}


def baseline_rms(sim) -> float:
    """Integer chained cross-correlation (tomviz), gauge-fixed like ours for a fair comparison."""
    t = sim.truth
    raw = integer_chain(sim.tiltseries, sim.angles)
    _, fixed = geometry.gauge_fix(sim.angles, geometry.axis_frame(raw, t["axis_angle_deg"]))
    err = np.linalg.norm(geometry.raw_frame(fixed, t["axis_angle_deg"]) - t["shifts_yx_px"], axis=1)
    return float(np.sqrt(np.mean(err**2)))


@pytest.fixture(scope="module")
def phantom():
    return simulate(simulate_params())  # the demo phantom (same field of view) at 64 px


@pytest.fixture(scope="module")
def translation_only(phantom):
    return align_tiltseries(phantom.tiltseries, phantom.angles, settings(projection_matching=False))


@pytest.fixture(scope="module")
def matched(phantom):
    return align_tiltseries(phantom.tiltseries, phantom.angles, settings(projection_matching=True))


def test_translation_alignment_beats_integer_chain(phantom, translation_only, tmp_path_factory):
    e = errors(phantom, translation_only)
    base = baseline_rms(phantom)
    report = {"translation_alignment": e, "integer_chain_rms": base}
    (tmp_path_factory.getbasetemp() / "align_accuracy.json").write_text(json.dumps(report))
    print(json.dumps(report))
    assert e["shift_rms"] <= 0.25, report
    assert e["axis_angle"] <= 0.1, report
    assert base > 2 * e["shift_rms"], report  # integer steps accumulate ~1 px


def test_projection_matching_reaches_the_target(phantom, matched):
    e = errors(phantom, matched)
    print(json.dumps({"projection_matching": e}))
    assert e["shift_rms"] <= 0.15, e
    assert e["axis_angle"] <= 0.1, e
    assert e["axis_offset"] <= 0.25, e
    history = matched.history["projection_matching"]
    assert history and history[-1]["rms_change_px"] < history[0]["rms_change_px"]
    assert not matched.bad.any()


def test_aligned_series_matches_the_truth_frame(phantom, matched):
    """Applied once to the noise-free data, the alignment reproduces the truth's projections."""
    aligned, fills = apply_alignment(phantom.expected - 20.0, matched)
    reproj = joseph.project(phantom.density, phantom.angles)
    corr = [np.corrcoef(a.ravel(), r.ravel())[0, 1] for a, r in zip(aligned, reproj, strict=True)]
    assert min(corr) > 0.97
    assert len(fills) == len(aligned) and all(abs(f) < 5 for f in fills)


def test_series_without_zero_tilt_and_odd_count():
    p = simulate_params(tilt={"start": -70, "stop": 68, "step": 3}, seed=1)
    sim = simulate(p)
    assert len(sim.angles) % 2 == 1 and 0 not in sim.angles
    e = errors(sim, align_tiltseries(sim.tiltseries, sim.angles, settings(projection_matching=False)))
    assert e["shift_rms"] <= 0.3 and e["axis_angle"] <= 0.1, e


def test_axis_angle_near_ninety_degrees():
    sim = simulate(simulate_params(misalignment={"axis_angle_deg": 88.5}, seed=2))
    res = align_tiltseries(sim.tiltseries, sim.angles,
                           settings(projection_matching=True, axis_angle_guess=90.0))
    e = errors(sim, res)
    assert e["axis_angle"] <= 0.1 and e["axis_offset"] <= 0.25 and e["shift_rms"] <= 0.15, e


def test_blank_tilt_is_flagged_and_dropped(phantom):
    stack = phantom.tiltseries.copy()
    rng = np.random.default_rng(0)
    blank = 50
    stack[blank] = 20 + rng.normal(0, 8, stack[blank].shape)  # beam blanked: dark level + noise
    res = align_tiltseries(stack, phantom.angles, settings(projection_matching=False))
    assert np.flatnonzero(res.bad).tolist() == [blank]
    e = errors(phantom, res)  # the chain runs across the gap unharmed
    assert e["shift_rms"] <= 0.3, e
    aligned, _ = apply_alignment(stack, res, ~res.bad)
    assert len(aligned) == len(stack) - 1
    assert np.isnan(res.quality[blank]) and np.isfinite(np.delete(res.quality, blank)).all()
    # Its shift is interpolated from its neighbours, whichever way the series runs.
    lo, hi = np.sort(res.shifts_yx[[blank - 1, blank + 1]], axis=0)
    assert np.all((lo - 1e-9 <= res.shifts_yx[blank]) & (res.shifts_yx[blank] <= hi + 1e-9))
    rev = align_tiltseries(stack[::-1], phantom.angles[::-1], settings(projection_matching=False))
    assert np.flatnonzero(rev.bad).tolist() == [len(stack) - 1 - blank]
    np.testing.assert_allclose(rev.shifts_yx[::-1], res.shifts_yx, atol=0.05)


def test_a_binning_that_does_not_divide_the_images_is_refused(phantom):
    with pytest.raises(InputError, match=r"align.binning: 3 does not divide the 64×64 px images"):
        align_tiltseries(phantom.tiltseries, phantom.angles, settings(binning=3))


def test_fixed_axis_angle_and_offset_are_respected(phantom):
    t = phantom.truth
    res = align_tiltseries(phantom.tiltseries, phantom.angles,
                           settings(projection_matching=False, axis_angle=t["axis_angle_deg"],
                                    axis_offset=t["axis_offset_px"]))
    assert res.axis_angle_deg == t["axis_angle_deg"]
    assert res.axis_offset_px == pytest.approx(t["axis_offset_px"])
    assert errors(phantom, res)["shift_rms"] <= 0.25

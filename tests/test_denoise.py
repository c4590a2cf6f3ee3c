"""Noise2Inverse denoising: disjoint tilt subsets that cover the series, sub-reconstructions by the
reconstruction's own code, the X:1 pairs, a denoised volume closer to the truth than its input,
resuming after a kill, the comparison figure and the config checks."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from conftest import stage
from stemtomo.core.config import load_schema, validate_config
from stemtomo.core.errors import ConfigError, InputError
from stemtomo.core.intensity import Normalisation
from stemtomo.core.labels import MODELS
from stemtomo.learn.denoise import denoise_splits, denoise_volume, train_denoiser
from stemtomo.learn.denoise_data import SplitPairs, context_planes, from_planes, relative_error, to_planes
from stemtomo.learn.denoise_figures import bright_line, comparison
from stemtomo.learn.denoise_split import reconstruct_split, split_tilts
from stemtomo.learn.settings import DenoiseSettings
from stemtomo.prep.inputs import check_inputs
from stemtomo.recon.reconstruct import reconstruct
from stemtomo.recon.settings import ReconstructSettings
from stemtomo.tomo.projectors import make_projector

torch.set_num_threads(1)  # tiny networks: one thread is fastest (and robust on a loaded machine)

NZ, NY, NX = 22, 12, 32  # thin along the beam, planes not a multiple of 2^depth: padding is used
ANGLES = np.arange(-70, 71, 4.0)


@pytest.fixture(scope="module")
def noisy():
    """A support slab with bright 'particles' that change from row to row, its very noisy series
    (Poisson at ~0.5 counts per unit path), the full and the two split MLEM reconstructions."""
    rng = np.random.default_rng(0)
    zz, xx = np.mgrid[:NZ, :NX]
    phantom = np.zeros((NZ, NY, NX), np.float32)
    for y in range(NY):
        phantom[:, y][(abs(zz - 11) < 5) & (abs(xx - 16) < 12)] = 1.0
        for _ in range(3):
            cz, cx = rng.integers(6, 16), rng.integers(6, 26)
            phantom[:, y][(zz - cz) ** 2 + (xx - cx) ** 2 < 4] = 4.0
    clean = make_projector("joseph-cpu", ANGLES, phantom.shape).forward(phantom)
    data = (rng.poisson(np.maximum(clean, 0) * 0.5) / 0.5).astype(np.float32)
    rs = stage(ReconstructSettings, iterations=30, backend="joseph-cpu", height=NZ)
    full, _ = reconstruct(data, ANGLES, rs)
    splits = [reconstruct_split(data, ANGLES, rs, k, 2)[0] for k in range(2)]
    return phantom, data, rs, full, splits


def small(**overrides) -> DenoiseSettings:
    base = {"enabled": True, "base": 8, "depth": 2, "patch_size": 16, "patches_per_epoch": 64,
            "epochs": 20, "batch_size": 8, "lr": 0.01, "device": "cpu"}
    return stage(DenoiseSettings, **{**base, **overrides})


@pytest.mark.parametrize("n,k", [(71, 2), (71, 4), (31, 3), (36, 9), (8, 2)])
def test_tilt_subsets_are_disjoint_cover_all_tilts_and_span_the_range(n, k):
    subsets = split_tilts(n, k)
    assert len(subsets) == k
    joined = np.concatenate(subsets)
    assert sorted(joined.tolist()) == list(range(n))  # every tilt once: disjoint and complete
    for s in subsets:
        assert len(s) >= 4 and s[0] < k and s[-1] >= n - k  # interleaved: low to high tilts
        assert np.all(np.diff(s) == k)


def test_too_many_splits_for_the_series_are_refused():
    with pytest.raises(InputError, match=r"denoise.splits: 5 splits of 19 tilts.*\n  fix: use "
                       r"between 2 and 4 splits"):
        split_tilts(19, 5)
    with pytest.raises(InputError, match="needs at least 8 tilts"):
        split_tilts(7, 2)


def test_sub_reconstruction_is_the_reconstruction_of_its_tilts_in_slabs_too(noisy):
    _, data, rs, _, splits = noisy
    tilts = split_tilts(len(ANGLES), 2)[1]
    own, _ = reconstruct(data[tilts], ANGLES[tilts], rs)
    np.testing.assert_array_equal(splits[1], own)
    parts = [reconstruct_split(data, ANGLES, rs, 1, 2, rows=r) for r in ((0, 5), (5, NY))]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts], axis=1), splits[1])
    record = parts[0][1]
    assert record["tilts"] == tilts.tolist() and record["split"] == 1 and record["rows"] == [0, 5]
    assert record["angles"] == ANGLES[tilts].tolist()
    with pytest.raises(InputError, match="split 2 of 2 does not exist"):
        reconstruct_split(data, ANGLES, rs, 2, 2)


def test_planes_round_trip_with_padding_and_context_at_the_edges():
    vol = np.random.default_rng(1).random((NZ, NY, NX)).astype(np.float32)
    norm = Normalisation(0.2, 0.7)
    planes = to_planes(vol, norm, 8, 16)
    assert planes.shape == (NY, 24, 32)  # z padded 22 → 24 (multiple of 8), x already one
    np.testing.assert_allclose(planes[3, :NZ, :], (vol[:, 3, :] - 0.2) / 0.5, rtol=1e-6)
    np.testing.assert_array_equal(planes[3, NZ:NZ + 2], planes[3, NZ - 1:NZ - 3:-1])  # mirrored
    np.testing.assert_allclose(from_planes(planes, vol.shape, norm), vol, atol=1e-6)
    assert to_planes(vol[:10], norm, 4, 16).shape == (NY, 16, 32)  # thinner than a patch
    assert context_planes([0, 5, NY - 1], NY, 2).tolist() == [
        [0, 0, 0, 1, 2], [3, 4, 5, 6, 7], [9, 10, 11, 11, 11]]


def test_x_to_1_pairs_take_the_mean_of_the_other_splits():
    rng = np.random.default_rng(2)
    # plane p of split j holds 100 j + p (+ a little noise): every patch says where it came from
    splits = [(100 * j + np.arange(6)[:, None, None] + 0.01 * rng.random((6, 20, 24))).astype(
        np.float32) for j in range(3)]
    pairs = SplitPairs(splits)
    np.testing.assert_allclose(pairs.inputs(1, np.array([2, 3])),
                               (splits[0][[2, 3]] + splits[2][[2, 3]]) / 2, rtol=1e-6)
    x, y = pairs.draw(np.random.default_rng(3), 40, 16, context=1)
    assert x.shape == (40, 3, 16, 16) and y.shape == (40, 16, 16)
    x2, _ = pairs.draw(np.random.default_rng(3), 40, 16, context=1)
    np.testing.assert_array_equal(x, x2)  # the draws come from the generator only
    seen = set()
    for xi, yi in zip(x, y, strict=True):
        j, p = divmod(int(round(float(yi.mean()))), 100)
        seen.add(j)
        for c, q in enumerate((max(p - 1, 0), p, min(p + 1, 5))):  # neighbours, edges repeated
            others = np.mean([100 * i + q for i in range(3) if i != j])
            assert abs(float(xi[c].mean()) - others) < 0.02
    assert seen == {0, 1, 2}  # every split serves as the target
    with pytest.raises(ValueError, match="at least 2 sub-reconstructions"):
        SplitPairs(splits[:1])


def test_bright_draws_follow_the_input_intensity_and_never_the_target():
    # K=2: particle A in both splits, B only in split 0 (noise of split 0, say); backgrounds are
    # negative (no weight) and tell the target apart: split 0 at −0.01, split 1 at −0.02
    a, b = (slice(None), slice(4, 8), slice(4, 8)), (slice(None), slice(36, 40), slice(36, 40))
    splits = [np.full((4, 48, 48), -0.01 * (j + 1), np.float32) for j in range(2)]
    for j, s in enumerate(splits):
        s[a] = 10.0
        if j == 0:
            s[b] = 20.0
    pairs = SplitPairs(splits)
    x, y = pairs.draw(np.random.default_rng(4), 200, 16, context=0, bright=1.0)
    target0 = np.isclose(np.median(y, axis=(1, 2)), -0.01)
    has_a, has_b = ((x[:, 0] == v).any(axis=(1, 2)) for v in (10, 20))  # 16 px: never both
    assert 40 < target0.sum() < 160
    assert has_a[target0].all() and not (y[target0] == 20).any()  # its input (split 1) has no B
    assert 0.5 < has_b[~target0].mean() < 0.85  # split 1's input is split 0: B is 2/3 of it
    x, _ = pairs.draw(np.random.default_rng(4), 200, 16, context=0, bright=0.0)
    assert (x >= 10).any(axis=(1, 2, 3)).mean() < 0.3  # uniform draws rarely show them
    x, _ = pairs.draw(np.random.default_rng(4), 200, 16, context=0, bright=0.5)
    assert 0.5 < (x >= 10).any(axis=(1, 2, 3)).mean() < 0.8


class _Centre(torch.nn.Module):
    """A stand-in network that returns its input's centre plane: the output is then the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, x.shape[1] // 2:x.shape[1] // 2 + 1]


def test_output_averages_the_network_over_the_x_to_1_inputs():
    rng = np.random.default_rng(6)
    splits = [rng.random((7, 16, 16)).astype(np.float32) for _ in range(3)]
    pairs = SplitPairs(splits)
    out = denoise_splits(_Centre(), pairs, context=1, device=torch.device("cpu"))
    # mean over j of (mean of the splits other than j) = the mean of all splits
    np.testing.assert_allclose(out, np.mean(splits, axis=0), rtol=1e-5, atol=1e-6)
    seen = []

    class Record(_Centre):
        def forward(self, x):
            seen.append(x.clone())
            return super().forward(x)

    denoise_splits(Record(), pairs, context=1, device=torch.device("cpu"))
    np.testing.assert_allclose(seen[0][:, 1].numpy(), (splits[1] + splits[2]) / 2, rtol=1e-6)
    np.testing.assert_allclose(seen[0][0, 0].numpy(), seen[0][0, 1].numpy())  # edge repeated
    np.testing.assert_allclose(seen[-1][:, 1].numpy(), (splits[0] + splits[1]) / 2, rtol=1e-6)


def test_relative_error_is_scale_free():
    ref = np.random.default_rng(4).random((4, 5, 6))
    assert relative_error(3.5 * ref, ref) == pytest.approx(0.0, abs=1e-12)
    noise = np.random.default_rng(5).normal(0, 0.1, ref.shape)
    assert relative_error(2 * (ref + noise), ref) == pytest.approx(relative_error(ref + noise, ref))
    assert relative_error(np.ones_like(ref), ref) > 0.2


def test_denoised_volume_is_closer_to_the_phantom_than_its_input(noisy, tmp_path):
    phantom, _, _, full, splits = noisy
    # seed 1 starts from the worst initial loss of seeds 0-3 (all end ≥ 0.1 below the input)
    denoised, record = denoise_volume(full, splits, small(epochs=40, seed=1), str(tmp_path / "ck.pt"))
    assert denoised.shape == full.shape and denoised.dtype == np.float32
    assert full.min() >= 0 and denoised.min() >= 0  # MLEM is non-negative, and so is its denoised form
    before, after = relative_error(full, phantom), relative_error(denoised, phantom)
    assert before > 0.4  # noise dominates this reconstruction
    assert after < before - 0.05, (before, after)
    assert record["epochs"] == 40 and len(record["loss"]) == 40
    assert record["loss"][-1] < record["loss"][0]
    assert record["model"] == {"name": "unet", "in_channels": 3, "classes": 1, "base": 8, "depth": 2}
    assert record["device"] == "cpu"


def test_resume_after_a_kill_equals_an_uninterrupted_run(noisy, tmp_path):
    _, _, _, full, splits = noisy
    norm = Normalisation.of(full)
    pairs = SplitPairs([to_planes(s, norm, 4, 16) for s in splits])
    settings = small(epochs=4, patches_per_epoch=16, base=4, model="attention_res_unet")
    whole = train_denoiser(pairs, settings, str(tmp_path / "a.pt"))
    first = train_denoiser(pairs, settings, str(tmp_path / "b.pt"), stop_after=2)
    assert first.epoch == 2
    resumed = train_denoiser(pairs, settings, str(tmp_path / "b.pt"))
    assert resumed.resumed_from == 2 and resumed.epoch == 4
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    other = train_denoiser(pairs, settings.replace(lr=0.002), str(tmp_path / "b.pt"))
    assert other.resumed_from == 0 and [h["epoch"] for h in other.history] == [1, 2, 3, 4]


def test_a_blend_weighs_the_denoised_output_against_its_input(noisy, tmp_path):
    _, _, _, full, splits = noisy
    settings = small(epochs=3, patches_per_epoch=16, base=4)
    pure, record = denoise_volume(full, splits, settings, str(tmp_path / "a.pt"))
    part, partial = denoise_volume(full, splits, settings.replace(blend=0.4), str(tmp_path / "b.pt"))
    assert record["blend"] == 1.0 and partial["blend"] == 0.4 and "0.4 against 0.6" in partial["output"]
    assert np.abs(pure - full).max() > 0.1  # the network changed the volume ...
    np.testing.assert_allclose(part, 0.4 * pure + 0.6 * full, rtol=0, atol=1e-5)  # ... 40 % of it
    assert part.dtype == np.float32
    nothing, _ = denoise_volume(full, splits, settings.replace(blend=0.0), str(tmp_path / "c.pt"))
    np.testing.assert_array_equal(nothing, full)


def test_comparison_figure_follows_the_particles(noisy, tmp_path):
    _, _, _, full, splits = noisy
    vol = np.zeros((NZ, NY, NX), np.float32)
    vol[7, 4, [5, 12, 20]] = 10.0  # three 'particles' on one line
    vol[15, 9, 3] = 12.0           # a brighter one alone
    assert bright_line(vol) == (7, 4)
    comparison(tmp_path / "c.png", full, np.mean(splits, axis=0), 0.4, [1.0, 0.5, 0.4])
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_denoise_is_off_by_default_and_offers_the_three_networks():
    schema = load_schema()  # fields == schema properties: tests/test_layout.py
    assert tuple(schema["$defs"]["denoise"]["properties"]["model"]["enum"]) == MODELS
    cfg = validate_config({"samples": {"t": {"simulate": {}}}})
    assert cfg["denoise"]["enabled"] is False  # off by default
    assert DenoiseSettings.from_section(cfg["denoise"]).channels == 3
    assert cfg["denoise"]["blend"] == 1.0  # the network's output alone unless asked


@pytest.mark.parametrize("sample,key,words", [
    ({"volume": "v.mrc", "denoise": {"enabled": True}}, "samples.d.denoise.enabled",
     "sample 'd' starts from `volume:` (a reconstruction made elsewhere) and has no tilts to split"),
    ({"slices": {"train": {"images": "a", "masks": "b"}, "val": {"images": "c", "masks": "d"}}},
     "denoise.enabled", "starts from `slices:` (2D images)"),
    ({"simulate": {}, "denoise": {"enabled": True, "patch_size": 36}}, "samples.d.denoise.patch_size",
     "36 is not a multiple of 2^depth = 8 (denoise.depth)"),
    ({"simulate": {}, "denoise": {"splits": 1}}, "samples.d.denoise.splits", "minimum"),
])
def test_config_refuses_denoising_what_has_no_tilts(sample, key, words):
    top = {"denoise": {"enabled": True}} if "slices" in sample else {}
    with pytest.raises(ConfigError) as e:
        validate_config({"samples": {"d": sample}, **top})
    assert f"config {key}:" in str(e.value) or f"{key}:" in str(e.value)
    assert words in str(e.value)


def test_splits_beyond_a_quarter_of_the_tilts_are_refused_before_any_job(tmp_path):
    cfg = validate_config({"samples": {"s": {"simulate": {"tilt": {"start": -60, "stop": 60,
                                                                   "step": 10}}}},
                           "denoise": {"enabled": True, "splits": 4}})
    with pytest.raises(ConfigError) as e:
        check_inputs(cfg, tmp_path)
    assert str(e.value) == ("config denoise.splits: 4 splits of 13 tilts (samples.s.simulate.tilt): "
                            "Noise2Inverse needs at least 2 subsets of at least 4 tilts each\n"
                            "  fix: use between 2 and 3 splits")
    tifffile.imwrite(tmp_path / "ts.tif", np.zeros((13, 16, 16), np.float32))
    cfg = validate_config({"samples": {"t": {"tiltseries": "ts.tif", "import": {
        "exclude_indices": [0, 12, 40]}, "denoise": {"enabled": True, "splits": 3}}}})
    with pytest.raises(ConfigError) as e:
        check_inputs(cfg, tmp_path)  # 40 is beyond the series: 11 tilts at most
    assert str(e.value) == ("config samples.t.denoise.splits: 3 splits of 11 tilts (at most: the "
                            "header of ts.tif less 2 exclude_indices): Noise2Inverse needs at "
                            "least 2 subsets of at least 4 tilts each\n  fix: use 2 splits")
    cfg["samples"]["t"]["denoise"]["splits"] = 2
    check_inputs(cfg, tmp_path)  # 2 splits of 11: fine
    cfg = validate_config({"samples": {"s": {"simulate": {"tilt": {"start": -10, "stop": 10,
                                                                   "step": 5}}}},
                           "denoise": {"enabled": True}})
    with pytest.raises(ConfigError, match="(?s)2 splits of 5 tilts.*fix: the series needs at least 8 "
                       "tilts: set denoise.enabled: false"):
        check_inputs(cfg, tmp_path)
    cfg["denoise"]["enabled"] = False
    check_inputs(cfg, tmp_path)  # off: nothing to check


def test_a_volume_sample_may_opt_out_of_a_top_level_denoise():
    cfg = {"samples": {"a": {"simulate": {}}, "b": {"volume": "v.mrc", "denoise": {"enabled": False}}},
           "denoise": {"enabled": True}}
    validate_config(cfg)  # no error: b opts out
    with pytest.raises(ConfigError, match=r"fix: set samples.b.denoise: \{enabled: false\}"):
        validate_config({"samples": {"b": {"volume": "v.mrc"}}, "denoise": {"enabled": True}})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_with_a_gpu_the_denoiser_trains_there_learns_and_resumes(noisy, tmp_path):
    phantom, _, _, full, splits = noisy
    denoised, record = denoise_volume(full, splits, small(device="auto"), str(tmp_path / "g.pt"))
    assert record["device"].startswith("cuda")
    assert relative_error(denoised, phantom) < relative_error(full, phantom) - 0.05
    pairs = SplitPairs([to_planes(s, Normalisation.of(full), 4, 16) for s in splits])
    settings = small(epochs=4, patches_per_epoch=16, device="cuda")
    first = train_denoiser(pairs, settings, str(tmp_path / "k.pt"), stop_after=2)
    resumed = train_denoiser(pairs, settings, str(tmp_path / "k.pt"))
    assert resumed.resumed_from == 2 and [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed.history[:2]] == [h["loss"] for h in first.history]
    assert next(resumed.model.parameters()).device.type == "cuda"

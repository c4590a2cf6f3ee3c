"""Whole-slice inference: padding, 2.5D channels, flip TTA and model files."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import stage  # noqa: E402
from stemtomo.core.intensity import Normalisation  # noqa: E402
from stemtomo.learn.modelfile import load_model, save_model  # noqa: E402
from stemtomo.learn.models import build_model  # noqa: E402
from stemtomo.learn.segmentation import labels_from_scores, segment_volume  # noqa: E402
from stemtomo.learn.settings import SegmentSettings, TrainSettings  # noqa: E402
from stemtomo.learn.training import TrainResult  # noqa: E402

torch.set_num_threads(2)


def seg(volume, model, channels, multiple, device, batch=4, probabilities=True, amp=False,
        z_range=None, block_voxels=2**26, **overrides):
    """segment_volume with the schema's segment defaults and `overrides` (tile, overlap, tta)."""
    settings = stage(SegmentSettings, batch_size=batch, probabilities=probabilities, **overrides)
    return segment_volume(volume, model, device, settings, channels=channels, multiple=multiple,
                          amp=amp, z_range=z_range, block_voxels=block_voxels)


class Threshold(torch.nn.Module):
    """Logits that pick a class from the centre channel's intensity: a model with known output."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.centre = channels // 2

    def forward(self, x):
        v = x[:, self.centre]
        return torch.stack([-(v - 0.1).abs(), -(v - 0.5).abs(), -(v - 0.95).abs()], dim=1) * 50


def volume_and_truth(shape=(6, 50, 46), seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, shape).astype(np.uint8)
    volume = np.array([0.1, 0.5, 0.95], np.float32)[truth]
    volume[0, 0, 0], volume[-1, -1, -1] = 0.0, 1.0  # pin the normalisation percentiles
    return volume, truth


@pytest.mark.parametrize("tta", [False, True])
def test_labels_come_back_cropped_and_in_place(tta):
    volume, truth = volume_and_truth()
    labels, probs = seg(volume, Threshold(1), 1, 8, torch.device("cpu"), batch=4, tta=tta)
    assert labels.shape == volume.shape and labels.dtype == np.uint8
    inner = (slice(None), slice(1, -1), slice(1, -1))  # percentile pinning pixels aside
    assert (labels[inner] == truth[inner]).mean() > 0.99
    assert probs.shape == (3,) + volume.shape
    np.testing.assert_allclose(probs.astype(np.float32).sum(axis=0), 1.0, atol=1e-2)


def test_two_and_a_half_d_channels_reach_the_model():
    volume, truth = volume_and_truth()
    seen = []

    class Spy(Threshold):
        def forward(self, x):
            seen.append(x.shape[1])
            return super().forward(x)

    labels, _ = seg(volume, Spy(5), 5, 8, torch.device("cpu"))
    assert set(seen) == {5}
    assert (labels[:, 1:-1, 1:-1] == truth[:, 1:-1, 1:-1]).mean() > 0.99


@pytest.mark.parametrize(("method", "sources"), [("percentile", 1), ("robust", 1),
                                                 ("percentile", 2)])
def test_a_training_patch_and_the_same_region_at_inference_get_identical_inputs(method, sources):
    """Train/inference parity: the network sees bit-identical values for a region, whether it
    arrives in a training patch or a whole validation slice (learn.patches) or inside a slice
    at inference (segment_volume, with the scaling stored in model.pt); with two input volumes
    (the reconstruction and its denoised form) too, each scaled by its own normalisation."""
    from stemtomo.learn.patches import extract
    from stemtomo.learn.settings import PatchSettings

    rng = np.random.default_rng(4)
    volume = (rng.gamma(2.0, 1.0, (20, 40, 48)) * 37.3 + 5.1).astype(np.float32)
    labels = np.full(volume.shape, 255, np.uint8)
    labels[2:18:2] = (volume[2:18:2] > 150).astype(np.uint8) * 2
    inputs = [volume, (volume[::-1] * 0.01 + 3.0).copy()][:sources]  # on another scale
    train, val, record = extract(inputs, labels, stage(PatchSettings, patch_size=16, context=1,
                                                       train_patches=40, normalisation=method))
    seen = {}

    class Spy(Threshold):
        def forward(self, x):
            seen.setdefault("x", []).append(x.clone())
            return super().forward(x)

    stored = [Normalisation.from_record(r) for r in record["source_normalisations"]]  # model.pt's
    assert stored == [Normalisation.of(v, method) for v in inputs]
    assert record["channels"] == 3 * sources and train.images.shape[1] == 3 * sources
    settings = stage(SegmentSettings, batch_size=1)
    segment_volume(np.stack(inputs) if sources > 1 else volume, Spy(3 * sources),
                   torch.device("cpu"), settings, channels=3 * sources, multiple=8,
                   normalisation=stored)
    inputs = torch.cat(seen["x"]).numpy()  # (z, 3 per source, y, x), padded to multiples of 8
    checked = 0
    for img, z, (cy, cx) in zip(train.images, train.slices, train.centres, strict=True):
        y0, x0 = cy - 8, cx - 8
        if 1 <= z <= 18 and y0 >= 0 and x0 >= 0 and y0 + 16 <= 40 and x0 + 16 <= 48:
            np.testing.assert_array_equal(inputs[z, :, y0:y0 + 16, x0:x0 + 16], img)
            checked += 1
    assert checked >= 10
    for img, z in zip(val.images, val.slices, strict=True):  # whole slices, context included
        np.testing.assert_array_equal(inputs[z, :, :40, :48], img)


def test_a_network_gets_as_many_normalisations_and_volumes_as_it_was_trained_on():
    from stemtomo.core.errors import InputError
    from stemtomo.learn.modelfile import ModelFile, input_scaling

    volume, _ = volume_and_truth()
    two = np.stack([volume, volume * 2])
    settings = stage(SegmentSettings)
    with pytest.raises(ValueError, match="2 input volume.*1 normalisation"):
        segment_volume(two, Threshold(6), torch.device("cpu"), settings, channels=6, multiple=8,
                       normalisation=Normalisation(0.0, 1.0))
    with pytest.raises(ValueError, match="odd number of channels"):
        segment_volume(two, Threshold(4), torch.device("cpu"), settings, channels=4, multiple=8)
    net = ModelFile(build_model("unet", in_channels=2, base=4, depth=2), 2, 16,
                    (Normalisation(0.0, 1.0), Normalisation(0.0, 2.0)), None, {})
    with pytest.raises(InputError, match="m.pt: the network was trained on 2 input volume.*"
                                         "given 1\n  fix: set denoise.input"):
        input_scaling([net], volume, "model", "m.pt")
    assert input_scaling([net], two, "volume") == (Normalisation.of(volume),
                                                   Normalisation.of(volume * 2))


def test_model_file_round_trip(tmp_path):
    model = build_model("attention_unet", in_channels=3, base=4, depth=2).eval()
    config = {"name": "attention_unet", "in_channels": 3, "classes": 3, "base": 4, "depth": 2}
    result = TrainResult(model.state_dict(), [{"epoch": 1, "val_dice_pt": 0.7}], 1, config,
                         [1.0, 1.0, 0.25])
    patches = {"patch_size": 16, "channels": 3,
               "normalisation": {"method": "robust", "low": 0.5, "high": 2.5}}
    save_model(str(tmp_path / "m.pt"), result, patches, stage(TrainSettings), {"rule": "train"})
    loaded = load_model(str(tmp_path / "m.pt"), torch.device("cpu"))
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(loaded.model(x), model(x))
    assert loaded.channels == 3 and loaded.patch_size == 16
    assert loaded.normalisations == (Normalisation(0.5, 2.5, "robust"),)
    assert loaded.priors == [1.0, 1.0, 0.25] and loaded.validation["val_dice_pt"] == 0.7
    assert loaded.record["best_epoch"] == 1 and loaded.record["provenance"] == {"rule": "train"}


class Constant(torch.nn.Module):
    def forward(self, x):
        logits = torch.tensor([0.3, 1.2, -0.4]).reshape(1, 3, 1, 1)
        return logits.expand(x.shape[0], 3, x.shape[2], x.shape[3]) + 0 * x[:, :1]


def test_tiles_blend_without_seams():
    volume, truth = volume_and_truth(shape=(3, 80, 72))
    cpu = torch.device("cpu")
    # A constant model gives exactly its constant everywhere, tiles and blending notwithstanding.
    _, probs = seg(volume, Constant(), 1, 8, cpu, tile=32, overlap=0.25)
    expected = torch.softmax(torch.tensor([0.3, 1.2, -0.4]), 0).numpy()
    np.testing.assert_allclose(probs.astype(np.float32), np.broadcast_to(expected[:, None, None, None],
                               probs.shape), atol=2e-3)
    # A pointwise model gives the same labels tiled or whole.
    whole, _ = seg(volume, Threshold(1), 1, 8, cpu, tile=1024)
    tiled, _ = seg(volume, Threshold(1), 1, 8, cpu, tile=32, overlap=0.5)
    assert np.array_equal(whole, tiled)
    with pytest.raises(ValueError, match="multiple of 8"):  # the config refuses it earlier too
        segment_volume(volume, Threshold(1), cpu, stage(SegmentSettings).replace(tile=30),
                       channels=1, multiple=8)


class EdgeMarker(Threshold):
    """Threshold logits, except class 0 within 4 px of the input's left and right edges: what a
    network does badly at a tile border, where it lacks context. (Class 0 because an exact tie,
    which equal tile weights would make, goes to the lowest class.)"""

    def forward(self, x):
        logits = super().forward(x)
        logits[:, 0, :, :4] += 1000
        logits[:, 0, :, -4:] += 1000
        return logits


def test_tile_borders_leave_no_seams_in_any_row():
    volume, truth = volume_and_truth(shape=(1, 64, 400))
    cpu = torch.device("cpu")
    whole, _ = seg(volume, EdgeMarker(1), 1, 8, cpu, tile=1024)
    tiled, _ = seg(volume, EdgeMarker(1), 1, 8, cpu, tile=128, overlap=0.5)
    assert (whole[..., 4:-4] == truth[..., 4:-4]).mean() > 0.99  # edge marks only at the edges
    assert np.array_equal(tiled, whole)


def test_z_range_must_lie_in_the_volume():
    volume, _ = volume_and_truth(shape=(4, 16, 16))
    for bad in ((2, 2), (3, 6), (-1, 2)):
        with pytest.raises(ValueError, match="z_range"):
            seg(volume, Threshold(1), 1, 8, torch.device("cpu"), z_range=bad)


def test_slabs_of_slices_join_to_the_whole_volume():
    from stemtomo.core.slabs import slab_rows

    volume, _ = volume_and_truth(shape=(9, 24, 24))
    cpu = torch.device("cpu")
    model = build_model("unet", in_channels=3, base=4, depth=2).eval()
    whole, wp = seg(volume, model, 3, 4, cpu, batch=2)
    parts = [seg(volume, model, 3, 4, cpu, batch=4, z_range=r)
             for r in slab_rows(9, 3, "segment.slabs")]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), whole)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts], axis=1), wp)


def test_labels_from_scores_is_argmax_with_first_maximum_winning():
    scores = torch.randn(3, 4, 9, 7).round(decimals=1)  # rounding makes ties
    scores[0, :, 0, 0] = 2.0  # a four-way tie
    torch.testing.assert_close(labels_from_scores(scores), scores.argmax(dim=1).to(torch.uint8))
    assert labels_from_scores(scores)[0, 0, 0] == 0


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_blocks_and_short_batches_give_the_one_block_result(channels):
    """Blocks of slices (each sent with its 2.5D context) and a final batch padded to full size
    change nothing: per-slice results equal those of one block and of a batch of one."""
    volume, _ = volume_and_truth(shape=(11, 24, 24))
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model("unet", in_channels=channels, base=4, depth=2).eval()
    one, p_one = seg(volume, model, channels, 4, cpu, batch=1)
    for batch, block_voxels, z_range in ((3, 1, None), (4, 24 * 24 * 5, None), (2, 1, (3, 10))):
        lab, p = seg(volume, model, channels, 4, cpu, batch=batch,
                                block_voxels=block_voxels, z_range=z_range)
        z0, z1 = z_range or (0, 11)
        assert np.array_equal(lab, one[z0:z1])
        np.testing.assert_allclose(p.astype(np.float32), p_one[:, z0:z1].astype(np.float32),
                                   atol=1e-3)
    # Without probabilities the labels come from the logits directly, and they are the same.
    lab, p = seg(volume, model, channels, 4, cpu, batch=3, block_voxels=1,
                            probabilities=False)
    assert p is None and np.array_equal(lab, one)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_streamed_blocks_match_one_block_and_the_cpu():
    """The CUDA path (pinned double-buffered uploads on a side stream, results fetched a block
    later) gives what one block gives, and float32 GPU labels equal the CPU's."""
    volume, _ = volume_and_truth(shape=(21, 40, 48))
    torch.manual_seed(0)
    model = build_model("attention_unet", in_channels=3, base=8, depth=3).eval()
    cpu, p_cpu = seg(volume, model, 3, 8, torch.device("cpu"), batch=4)
    gpu = torch.device("cuda")
    model = model.cuda()
    one, p_one = seg(volume, model, 3, 8, gpu, batch=4)
    for block_voxels, probabilities in ((1, True), (40 * 48 * 7, False)):
        lab, p = seg(volume, model, 3, 8, gpu, batch=4, block_voxels=block_voxels,
                                probabilities=probabilities)
        assert np.array_equal(lab, one)
        if probabilities:
            np.testing.assert_array_equal(p, p_one)
    np.testing.assert_allclose(p_one.astype(np.float32), p_cpu.astype(np.float32), atol=2e-3)
    top2 = np.sort(p_cpu.astype(np.float32), axis=0)
    clear = top2[-1] - top2[-2] > 0.01
    assert (one[clear] == cpu[clear]).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_bf16_inference_matches_the_cpu():
    torch.manual_seed(0)
    volume = np.random.default_rng(3).random((4, 64, 80)).astype(np.float32)
    model = build_model("attention_unet", base=8, depth=3).eval()
    cpu, p_cpu = seg(volume, model, 1, 8, torch.device("cpu"), tta=True)
    gpu, p_gpu = seg(volume, model.cuda(), 1, 8, torch.device("cuda"), tta=True, amp=True)
    assert gpu.shape == cpu.shape and p_gpu.shape == (3,) + volume.shape
    p_cpu, p_gpu = p_cpu.astype(np.float32), p_gpu.astype(np.float32)
    assert np.abs(p_gpu - p_cpu).max() < 0.05
    top2 = np.sort(p_cpu, axis=0)
    clear = top2[-1] - top2[-2] > 0.05  # bf16 may flip only near-tied voxels
    assert (gpu[clear] == cpu[clear]).all()


@pytest.mark.parametrize("options", [{}, {"tta": True}, {"tile": 16, "overlap": 0.5},
                                     {"probabilities": False}])
def test_a_pt_prior_moves_the_decision_as_calibration_computed_it(options):
    """The stored Pt prior reaches inference: labels are calibration.decide of the softmax
    scaled by the priors, on every path (logits only, probabilities, flips, tiles)."""
    from stemtomo.learn.calibration import decide

    rng = np.random.default_rng(5)
    volume = rng.random((3, 32, 40)).astype(np.float32)
    volume[0, 0, 0], volume[-1, -1, -1] = 0.0, 1.0
    cpu = torch.device("cpu")
    flat = {"probabilities": True, **options}
    plain, probs = seg(volume, Threshold(1), 1, 8, cpu, **{**flat, "probabilities": True})
    for w in (0.05, 20.0):
        priors = [1.0, 1.0, w]
        settings = stage(SegmentSettings, batch_size=2, **flat)
        labels, _ = segment_volume(volume, Threshold(1), cpu, settings, channels=1, multiple=8,
                                   priors=priors)
        expected = decide(np.moveaxis(probs.astype(np.float32), 0, 1), priors)
        near_tie = np.sort(np.moveaxis(probs, 0, -1).astype(np.float32) * priors, axis=-1)
        clear = near_tie[..., -1] - near_tie[..., -2] > 1e-2  # float16 probabilities aside
        assert (labels[clear] == expected[clear]).all()
        moved = (labels == 2).sum() - (plain == 2).sum()
        assert moved < 0 if w < 1 else moved > 0


def test_an_ensemble_is_the_mean_of_its_networks_calibrated_probabilities():
    class Shifted(Constant):
        def __init__(self, shift):
            super().__init__()
            self.shift = torch.tensor(shift).reshape(1, 3, 1, 1)

        def forward(self, x):
            return super().forward(x) + self.shift

    volume, _ = volume_and_truth(shape=(2, 16, 24))
    a, b = Shifted([0.0, 0.0, 1.5]), Shifted([0.5, -1.0, 0.0])
    priors = [[1.0, 1.0, 0.5], [1.0, 2.0, 1.0]]
    settings = stage(SegmentSettings, probabilities=True)
    _, probs = segment_volume(volume, [a, b], torch.device("cpu"), settings, channels=1,
                              multiple=8, priors=priors)

    def calibrated(net, w):
        p = torch.softmax(net(torch.zeros(1, 1, 1, 1))[0, :, 0, 0], 0).numpy() * np.array(w)
        return p / p.sum()

    expected = (calibrated(a, priors[0]) + calibrated(b, priors[1])) / 2
    np.testing.assert_allclose(probs.astype(np.float32)[:, 0, 0, 0], expected, atol=2e-3)
    with pytest.raises(ValueError, match="1 prior vectors for 2 networks"):
        segment_volume(volume, [a, b], torch.device("cpu"), settings, channels=1, multiple=8,
                       priors=priors[:1])


def test_ensembles_refuse_networks_trained_on_other_inputs():
    from stemtomo.learn.modelfile import ModelFile, input_scaling

    model = build_model("unet", base=4, depth=2)
    one = ModelFile(model, 1, 16, (Normalisation(0.0, 2.0),), None, {})
    other = ModelFile(model, 1, 16, (Normalisation(0.0, 3.0),), None, {})
    with pytest.raises(ValueError, match="differently normalised"):
        input_scaling([one, other], np.zeros((2, 8, 8), np.float32), "model")
    volume = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    assert input_scaling([one, one], volume, "model") == (Normalisation(0.0, 2.0),)
    assert input_scaling([one], volume, "volume") == (Normalisation.of(volume),)

"""The learning stages' settings (schema sections `denoise`, `patches`, `train`, `segment`), typed."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Section


@dataclass(frozen=True)
class PatchSettings(Section):
    SCHEMA = "patches"

    annotate_slices: int
    patch_size: int
    train_patches: int
    val_patches: int
    pt_fraction: float
    context: int          # 2.5D: neighbours on each side as channels
    val_fraction: float
    seed: int


@dataclass(frozen=True)
class TrainSettings(Section):
    """One network's training settings (config.model_settings: per_model merged in)."""

    SCHEMA = "train"
    NOT_FIELDS = frozenset({"models", "per_model"})  # which jobs run, not how one trains

    base: int
    depth: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    schedule: str         # cosine | plateau
    loss: str             # dice_ce | focal | weighted_ce | tversky
    class_weights: tuple[float, float, float]
    focal_gamma: float
    patience: int
    intensity_jitter: float
    seed: int
    device: str
    amp: bool
    compile: bool
    init_from: str        # none | previous


@dataclass(frozen=True)
class SegmentSettings(Section):
    SCHEMA = "segment"

    tta: bool
    probabilities: bool
    batch_size: int
    tile: int
    overlap: float
    slabs: int
    device: str
    compile: bool


@dataclass(frozen=True)
class DenoiseSettings(Section):
    """Noise2Inverse denoising of the reconstruction (learn.denoise), before the patches."""

    SCHEMA = "denoise"

    enabled: bool
    splits: int           # K interleaved tilt subsets, one sub-reconstruction each
    model: str            # unet | attention_unet | attention_res_unet (learn.models)
    base: int
    depth: int
    context: int          # 2.5D: neighbouring planes along the tilt axis on each side
    patch_size: int
    patches_per_epoch: int
    bright_fraction: float  # share of patches centred ∝ input intensity (learn.denoise_data)
    epochs: int
    batch_size: int
    lr: float
    seed: int
    device: str           # auto | cpu | cuda

    @property
    def channels(self) -> int:
        return 2 * self.context + 1

"""The learning stages' settings (schema sections `denoise`, `patches`, `train`, `segment`), typed."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Section


@dataclass(frozen=True)
class AnnotationNoise(Section):
    """Synthetic samples: a person's annotation errors (schema `patches.annotation_noise`)."""

    jitter_px: float
    jitter_scale_px: float
    missed_pt_diameter_nm: float
    missed_pt_fraction: float


@dataclass(frozen=True)
class PatchSettings(Section):
    SCHEMA = "patches"

    annotate_slices: int
    annotation_noise: AnnotationNoise
    patch_size: int
    train_patches: int
    pt_fraction: float
    normalisation: str    # percentile | robust (core.intensity)
    context: int          # 2.5D: neighbours on each side as channels
    val_fraction: float
    seed: int


@dataclass(frozen=True)
class TrainSettings(Section):
    """One network's training settings (config.model_settings: per_model merged in)."""

    SCHEMA = "train"
    # which jobs run, and the preset that filled in defaults (core.config): not how one trains
    NOT_FIELDS = frozenset({"models", "per_model", "preset"})

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
    stop_lr_fraction: float
    calibrate_pt: bool
    selection: str        # pt | foreground: the validation score that picks the best epoch
    min_class_dice: float  # an epoch is selectable only if every annotated class reaches it
    intensity_jitter: float
    seed: int
    device: str
    amp: bool
    compile: bool
    init_from: str        # none | previous
    finetune_lr_fraction: float


@dataclass(frozen=True)
class Cleanup(Section):
    """Removal of impossible small components (schema `segment.cleanup`, learn.cleanup)."""

    alumina_min_nm3: float
    pt_min_nm3: float


@dataclass(frozen=True)
class SegmentSettings(Section):
    SCHEMA = "segment"

    tta: bool
    normalisation: str    # model (the training's scaling) | volume (recomputed on this volume)
    ensemble: bool        # also segment with all networks together
    cleanup: Cleanup
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
    NOT_FIELDS = frozenset({"input"})  # chooses the later stages' inputs (Snakefile), not this job

    enabled: bool
    splits: int           # K interleaved tilt subsets, one sub-reconstruction each
    model: str            # unet | attention_unet | attention_res_unet (learn.models)
    base: int
    depth: int
    context: int          # 2.5D: neighbouring planes along the tilt axis on each side
    patch_size: int
    patches_per_epoch: int
    bright_fraction: float  # share of patches centred ∝ input intensity (learn.denoise_data)
    blend: float          # weight of the denoised volume in the output, the rest the input
    epochs: int
    batch_size: int
    lr: float
    seed: int
    device: str           # auto | cpu | cuda

    @property
    def channels(self) -> int:
        return 2 * self.context + 1

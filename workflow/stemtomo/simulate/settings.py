"""The simulate section of a synthetic sample (schema `$defs/simulate`), typed."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Section


@dataclass(frozen=True)
class TiltRange(Section):
    start: float
    stop: float
    step: float


@dataclass(frozen=True)
class SupportSettings(Section):
    crystallites: int
    platelet_fraction: float
    platelet_length_nm: tuple[float, float]
    platelet_thickness_nm: tuple[float, float]
    rod_length_nm: tuple[float, float]
    rod_diameter_nm: tuple[float, float]
    extent: float
    flatness: float
    porosity: float
    pore_diameter_nm: tuple[float, float]
    roughness: float
    roughness_nm: float


@dataclass(frozen=True)
class Diameters(Section):
    median: float
    sigma: float
    min: float
    max: float


@dataclass(frozen=True)
class PtSettings(Section):
    volume_fraction: float
    diameter_nm: Diameters
    embed: float
    min_gap_nm: float


@dataclass(frozen=True)
class HaadfSettings(Section):
    z_exponent: float
    pt_scatter_per_nm: float
    dose_e_per_A2: float
    detector_noise: float
    dark_level: float
    intensity_jitter: float
    blur_nm: float


@dataclass(frozen=True)
class Misalignment(Section):
    shift_px: float
    drift_px: float
    axis_angle_deg: float
    axis_offset_px: float


@dataclass(frozen=True)
class NeedleSettings(Section):
    radius: float                     # shank radius at the field edge / field
    tip_radius: float                 # / field
    tip_position: float               # tip, from the centre towards −y, / half field
    ellipticity: float
    layer_nm: float
    pt_fraction: float


@dataclass(frozen=True)
class SimulateSettings(Section):
    SCHEMA = "simulate"

    seed: int
    object: str                       # catalyst | needle
    size: int
    oversample: int
    pixel_size_nm: float
    acquisition: str                  # sequential | dose-symmetric
    tilt: TiltRange
    support: SupportSettings
    pt: PtSettings
    haadf: HaadfSettings
    misalignment: Misalignment
    needle: NeedleSettings

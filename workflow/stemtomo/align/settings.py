"""The align stage's settings (schema section `align`), typed."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Section


@dataclass(frozen=True)
class AlignSettings(Section):
    SCHEMA = "align"

    enabled: bool
    axis_angle: float | str             # degrees, or "auto"
    axis_angle_guess: float | None      # the microscope's value; None: unknown (search about 0°)
    axis_angle_search: float
    axis_offset: float | str            # px, or "auto"
    offset_search_px: float
    offset_slices: int
    offset_iterations: int
    reference: str                      # neighbour | cumulative
    cumulative_window: int
    upsample: int
    bandpass: tuple[float, float]
    taper: float
    max_shift: float
    binning: int | str                  # or "auto"
    projection_matching: bool | str     # or "auto"
    pm_iterations: int
    pm_tolerance_px: float
    pm_sirt_iterations: int
    pm_subsets: int
    projector: str
    bad_quality: float
    drop_bad_tilts: bool
    max_flagged_fraction: float

    @property
    def auto_axis_angle(self) -> bool:
        return self.axis_angle == "auto"

    @property
    def search_centre(self) -> float:
        return 0.0 if self.axis_angle_guess is None else float(self.axis_angle_guess)

    @property
    def auto_offset(self) -> bool:
        return self.axis_offset == "auto"

    def use_projection_matching(self, gpu: bool) -> bool:
        """`auto` runs projection matching only where a GPU makes it quick."""
        return self.projection_matching is True or (self.projection_matching == "auto" and gpu)

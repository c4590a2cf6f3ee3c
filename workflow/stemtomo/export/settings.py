"""The export stage's settings (schema section `export`), typed."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Section


@dataclass(frozen=True)
class ExportSettings(Section):
    SCHEMA = "export"

    smoothing: int
    max_triangles: int
    render_size: tuple[int, int]
    turntable_frames: int

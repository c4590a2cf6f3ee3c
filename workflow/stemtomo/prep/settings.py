"""The import stage's settings (schema section `import`), typed."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Section


@dataclass(frozen=True)
class ImportSettings(Section):
    SCHEMA = "import"

    int16: str                         # auto | signed | wrapped
    angles_unit: str                   # auto | degrees | radians
    exclude_indices: tuple[int, ...]
    exclude_angles: tuple[float, ...]
    allow_unsorted: bool
    binning: int
    crop: dict | None                  # {y: [y0, y1], x: [x0, x1]} before binning
    background: str                    # auto | none
    normalize: str                     # total | none

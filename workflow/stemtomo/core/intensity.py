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


def support_levels(volume: np.ndarray, max_samples: int = 1 << 24,
                   iterations: int = 100) -> tuple[float, float]:
    """The typical intensity of the background and of the solid: the medians of the two classes
    of an isodata split (Ridler & Calvard, IEEE SMC 1978) iterated with medians instead of means,
    so the bright Pt tail (a few % of the solid at most) barely moves either level. A volume's
    scaling then depends on what its support and pores look like, not on how much Pt it holds."""
    flat = volume.reshape(-1)
    flat = flat[::max(1, -(-flat.size // max_samples))]
    lo_p, hi_p = np.percentile(flat, [1.0, 99.0])
    threshold = (lo_p + hi_p) / 2
    low, high = float(lo_p), float(hi_p)
    for _ in range(iterations):
        below, above = flat[flat <= threshold], flat[flat > threshold]
        if not below.size or not above.size:
            break
        low, high = float(np.median(below)), float(np.median(above))
        if abs((low + high) / 2 - threshold) <= 1e-6 * max(abs(high - low), 1e-12):
            break
        threshold = (low + high) / 2
    return low, high


def source_stack(volume):
    """The (sources, z, y, x) view of one (z, y, x) input volume, or the stack itself: a network
    may read several volumes of one grid, each with its own Normalisation (NumPy or torch)."""
    return volume[None] if volume.ndim == 3 else volume


METHODS = ("percentile", "robust")


@dataclass(frozen=True)
class Normalisation:
    """The network input scaling: intensity `low` → 0 and `high` → 1; `method` says how they
    were found (percentile: the 1 % and 99.9 % points; robust: the background and solid
    levels of `support_levels`)."""

    low: float
    high: float
    method: str = "percentile"

    @classmethod
    def of(cls, volume: np.ndarray, method: str = "percentile") -> Normalisation:
        """The scaling of a volume by the given method."""
        if method == "percentile":
            return cls(*intensity_range(volume), method)
        if method == "robust":
            return cls(*support_levels(volume), method)
        raise ValueError(f"unknown normalisation {method!r}; choose one of {', '.join(METHODS)}")

    @classmethod
    def from_record(cls, record: dict | list) -> Normalisation:
        """From `as_record()` (or the former [low, high] list of percentiles)."""
        if isinstance(record, dict):
            return cls(float(record["low"]), float(record["high"]), record["method"])
        return cls(float(record[0]), float(record[1]))

    def as_record(self) -> dict:
        return {"method": self.method, "low": self.low, "high": self.high}

    @property
    def span(self) -> float:
        return max(self.high - self.low, 1e-12)

    def apply(self, values):
        """Scaled float32 values of a NumPy array or a torch tensor (same arithmetic for both,
        so a training patch and the same region at inference are bit-identical)."""
        return (values - self.low) / self.span

    def as_list(self) -> list[float]:
        return [self.low, self.high]

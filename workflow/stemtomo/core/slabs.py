"""Splitting a volume into slabs for Snakemake jobs (reconstruction rows, segmentation slices)."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def slab_rows(height: int, slabs: int, key: str = "reconstruct.slabs") -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges splitting `height` rows (or slices) into `slabs` jobs."""
    if not 1 <= slabs <= height:
        raise InputError(key, f"{slabs} slabs for {height} rows", f"use between 1 and {height} slabs")
    edges = np.linspace(0, height, slabs + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]

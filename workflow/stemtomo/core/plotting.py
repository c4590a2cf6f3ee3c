"""Matplotlib for the QC figures (Agg backend, PNG written atomically); each stage draws its own
figures in its `figures` module."""

from __future__ import annotations

import os

from .io import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | os.PathLike) -> None:
    """Write `fig` as a PNG under `path` (atomically) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    pyplot().close(fig)

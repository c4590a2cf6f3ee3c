"""Shared fixtures: small synthetic samples built from the schema's defaults."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from stemtomo.config import validate_config


def simulate_params(**overrides) -> dict:
    """The `simulate` section with schema defaults, at a test-friendly size, plus overrides."""
    sim = {"size": 64, "pixel_size_nm": 0.8}
    sim.update(overrides)
    cfg = validate_config({"samples": {"t": {"simulate": copy.deepcopy(sim)}}})
    return cfg["samples"]["t"]["simulate"]


def sphere(shape, centre, radius) -> np.ndarray:
    """Boolean ball of `radius` voxels about `centre` (z, y, x) in a volume of `shape`."""
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2


def import_settings(**overrides) -> dict:
    cfg = validate_config({"samples": {"t": {"simulate": {}}}, "import": overrides})
    return cfg["import"]


@pytest.fixture(scope="session")
def small_sim():
    from stemtomo.simulate import simulate

    return simulate(simulate_params())

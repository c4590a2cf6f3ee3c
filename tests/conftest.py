"""Shared fixtures: small synthetic samples and typed stage settings built from the schema's
defaults."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from stemtomo.core.config import validate_config
from stemtomo.core.settings import Section
from stemtomo.simulate.settings import SimulateSettings


def stage(cls: type[Section], **overrides) -> Section:
    """A stage's typed settings: the schema's defaults with `overrides` (validated like a config)."""
    cfg = validate_config({"samples": {"t": {"simulate": {}}}, cls.SCHEMA: copy.deepcopy(overrides)})
    return cls.from_section(cfg[cls.SCHEMA])


def simulate_params(**overrides) -> SimulateSettings:
    """The `simulate` section with schema defaults, at a test-friendly size, plus overrides."""
    sim = {"size": 64, "pixel_size_nm": 0.8}
    sim.update(overrides)
    cfg = validate_config({"samples": {"t": {"simulate": copy.deepcopy(sim)}}})
    return SimulateSettings.from_section(cfg["samples"]["t"]["simulate"])


def sphere(shape, centre, radius) -> np.ndarray:
    """Boolean ball of `radius` voxels about `centre` (z, y, x) in a volume of `shape`."""
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2


def import_settings(**overrides):
    from stemtomo.prep.settings import ImportSettings

    return stage(ImportSettings, **overrides)


@pytest.fixture(scope="session")
def small_sim():
    from stemtomo.simulate.acquisition import simulate

    return simulate(simulate_params())

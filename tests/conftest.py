"""Shared fixtures: small synthetic samples built from the schema's defaults."""

from __future__ import annotations

import copy

import pytest

from stemtomo.config import validate_config


def simulate_params(**overrides) -> dict:
    """The `simulate` section with schema defaults, at a test-friendly size, plus overrides."""
    sim = {"size": 64, "pixel_size_nm": 0.8}
    sim.update(overrides)
    cfg = validate_config({"samples": {"t": {"simulate": copy.deepcopy(sim)}}})
    return cfg["samples"]["t"]["simulate"]


def import_settings(**overrides) -> dict:
    cfg = validate_config({"samples": {"t": {"simulate": {}}}, "import": overrides})
    return cfg["import"]


@pytest.fixture(scope="session")
def small_sim():
    from stemtomo.simulate import simulate

    return simulate(simulate_params())

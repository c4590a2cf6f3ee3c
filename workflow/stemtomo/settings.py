"""A stage's settings for one sample, merged without validation: what rule scripts need inside a
job (config.py validates them before any job runs and needs PyYAML and jsonschema; this module
needs neither, so every rule's conda env can import it)."""

from __future__ import annotations

import copy

# Settings that change how a stage runs or what else is written, not the results of its rules:
# config.rule_params leaves them out of the rule parameters, so editing them reruns nothing, and
# the scripts read them from the config through `job_settings`. (`reconstruct.mrc` only adds the
# reconstruct_mrc target.)
RUNTIME_KEYS = {"reconstruct": ("max_memory_fraction", "mrc"), "segment": ("batch_size",)}


def canonical(value: object) -> object:
    """Dicts with their keys sorted, recursively: Snakemake compares rule parameters by their
    text, so key order (the order keys were written in config.yaml) must not count as a change."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def merged_settings(config: dict, sample: str, stage: str) -> dict:
    """The top-level `stage` section overridden by samples.<sample>.<stage>, keys sorted."""
    merged = copy.deepcopy(config.get(stage, {}))
    merged.update(copy.deepcopy(config["samples"][sample].get(stage) or {}))
    return canonical(merged)


def job_settings(smk, stage: str) -> dict:
    """Inside a rule script: its parameters plus the stage's run-time settings from the config."""
    full = merged_settings(smk.config, smk.wildcards.sample, stage)
    return {**smk.params.settings, **{k: full[k] for k in RUNTIME_KEYS.get(stage, ()) if k in full}}

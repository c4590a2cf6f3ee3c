"""A stage's settings for one sample, merged without validation: what rule scripts need inside a
job (config.py validates them before any job runs and needs PyYAML and jsonschema; this module
needs neither, so every rule's conda env can import it), and the typed settings built from
them (`Section`)."""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError

# Settings that change how a stage runs or what else is written, not the results of its rules:
# config.rule_params leaves them out of the rule parameters, so editing them reruns nothing, and
# the scripts read them from the config through `job_settings`. (`reconstruct.mrc` only adds the
# reconstruct_mrc target, `segment.ensemble` the ensemble's targets, `denoise.input` the inputs
# of the patches and segment_slab jobs, which rerun them by their changed inputs.)
RUNTIME_KEYS = {"reconstruct": ("max_memory_fraction", "mrc"),
                "segment": ("batch_size", "ensemble"),
                "denoise": ("input",)}


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


class Section:
    """Base of the typed, frozen settings of a stage (a dataclass per schema section).

    A rule script builds its stage's settings once, with `from_section`, from the section the
    schema validated (and filled with defaults: the schema stays the only source of defaults, so
    fields have none). Lists become tuples; a field whose type is itself a Section is built from
    the nested mapping. Schema properties that the dataclass does not hold on purpose (e.g. the
    train section's `models`, which selects jobs rather than configuring one) are listed in
    NOT_FIELDS. tests/test_config.py keeps the fields equal to the schema's properties.
    """

    SCHEMA: ClassVar[str] = ""                    # the schema's $defs entry (top-level sections)
    NOT_FIELDS: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_section(cls: type[S], section: Mapping[str, Any], where: str | None = None) -> S:
        """The settings from a validated mapping; a key the dataclass lacks, or a field the mapping
        lacks, is a ConfigError naming `where` (the section's dotted config key)."""
        where = where or cls.SCHEMA or cls.__name__
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        given = set(section) - cls.NOT_FIELDS
        missing, unknown = sorted(set(names) - given), sorted(given - set(names))
        if missing or unknown:
            raise ConfigError(where, f"settings do not match stemtomo's {cls.__name__}: "
                              f"missing {missing}, unknown {unknown}",
                              "validate the config against workflow/schemas/config.schema.yaml "
                              "(Snakemake does so before any job)")
        hints = typing.get_type_hints(cls)
        values = {}
        for name in names:
            kind = hints[name]
            if isinstance(kind, type) and issubclass(kind, Section):
                values[name] = kind.from_section(section[name], f"{where}.{name}")
            else:
                values[name] = _frozen(section[name])
        return cls(**values)

    def as_dict(self) -> dict:
        """Plain JSON-able values (tuples back to lists), e.g. for a checkpoint's record."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]

    def replace(self: S, **changes: Any) -> S:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


S = TypeVar("S", bound=Section)


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value

"""Config validation against workflow/schemas/config.schema.yaml, with defaults filled in.

Errors name the dotted key, the problem and the fix (the schema's description of the key). Only the
standard library, PyYAML and jsonschema are imported: Snakemake's own environment runs this.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators

from .errors import ConfigError, InputError
from .samples import START_POINTS, expand, start_point
from .settings import RUNTIME_KEYS, canonical, merged_settings

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _with_defaults(cls):
    """A validator that fills each missing property with its schema default before checking it."""
    check_properties = cls.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema)

    return validators.extend(cls, {"properties": properties})


_DefaultFilling = _with_defaults(Draft202012Validator)


def _dotted(path: Iterable) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def _describe(error) -> tuple[str, str, str]:
    """(key, problem, fix) for one jsonschema error."""
    key = _dotted(error.absolute_path)
    description = error.schema.get("description", "") if isinstance(error.schema, dict) else ""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = _dotted([*error.absolute_path, unknown[0]]) if unknown else key
        hint = f"allowed keys here: {', '.join(allowed)}" if allowed else ""
        return where, f"unknown key {', '.join(map(repr, unknown))}", \
            f"remove it or correct the spelling; {hint}".rstrip("; ")
    if error.validator == "oneOf" and isinstance(error.instance, dict) and \
            "simulate" in str(error.schema.get("oneOf", "")):
        given = sorted(set(START_POINTS) & set(error.instance))
        return key, "a sample needs exactly one start point of `simulate:` (synthetic), " \
            "`tiltseries:` (raw tilt series), `volume:` (a reconstruction) or `slices:` (2D images " \
            f"and masks); it has {', '.join(given) if given else 'none'}", \
            "keep one of them (a second dataset is a second sample)"
    if error.validator == "required":
        return key, error.message, description or "add the missing key"
    if error.validator == "enum":
        return key, f"{error.instance!r} is not allowed", \
            f"use one of {', '.join(map(str, error.validator_value))}"
    expected = f"expected: {description}" if description else ""
    if error.validator == "type":
        return key, f"{error.instance!r} is not of type {error.validator_value}", \
            f"give a value of type {error.validator_value}" + (f" ({description})" if description else "")
    return key, error.message, expected


def apply_presets(config: dict, schema: dict) -> dict:
    """Fill in the values of `train.preset` (schema `$defs/presets`) where the config leaves a
    key out: a top-level preset fills the top-level sections, a sample's preset that sample's
    sections (so it overrides top-level values; give a key in the sample's own section to keep
    it). Explicit keys always win."""
    presets = schema["$defs"]["presets"]["properties"]

    def fill(where: dict) -> None:
        name = (where.get("train") or {}).get("preset")
        if not isinstance(name, str) or name not in presets:
            return  # absent (the default, demo, sets nothing) or invalid: validation says so
        for section, values in presets[name]["default"].items():
            if where.get(section) is None:
                where[section] = {}
            target = where[section]
            if not isinstance(target, dict):
                continue  # validation names the wrong type
            for key, value in values.items():
                target.setdefault(key, copy.deepcopy(value))

    if isinstance(config, dict):
        fill(config)
        for sample in (config.get("samples") or {}).values():
            if isinstance(sample, dict):
                fill(sample)
    return config


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate `config` in place (presets and defaults filled in) and return it; raise
    ConfigError if invalid."""
    schema = schema or load_schema()
    apply_presets(config, schema)
    errors = sorted(_DefaultFilling(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:6]:
            key, problem, fix = _describe(err)
            lines.append(f"  {key}: {problem}" + (f"\n    fix: {fix}" if fix else ""))
        raise ConfigError("config", f"{len(errors)} invalid setting(s):\n" + "\n".join(lines))
    for name in config["samples"]:
        for stage in stages_with_overrides(schema):
            stage_settings(config, name, stage, schema)  # check per-sample overrides early
        for model in stage_settings(config, name, "train", schema).get("per_model") or {}:
            model_settings(config, name, model, schema)
    for name in config["samples"]:
        _check_between_keys(config, name)
    return config


def setting_key(config: dict, sample: str, stage: str, key: str) -> str:
    """The dotted key a setting came from: the sample's override or the top-level section."""
    own = config["samples"][sample].get(stage) or {}
    return f"samples.{sample}.{stage}.{key}" if key in own else f"{stage}.{key}"


def _check_between_keys(config: dict, sample: str) -> None:
    """Constraints that tie keys together, checked before any job runs (not after hours of
    reconstruction and training)."""
    tilt = (config["samples"][sample].get("simulate") or {}).get("tilt")
    if tilt and tilt["stop"] < tilt["start"] + tilt["step"]:
        raise ConfigError(f"config samples.{sample}.simulate.tilt",
                          f"start {tilt['start']}, stop {tilt['stop']}, step {tilt['step']} give "
                          "fewer than two tilts", "make stop larger than start + step")
    def require_multiples(stage: str, key: str, trained_on: str, fix: str) -> None:
        """`stage.key` of this sample must be a multiple of 2^depth of every network trained
        on `trained_on` (per-model depths included)."""
        value = stage_settings(config, sample, stage)[key]
        for model in stage_settings(config, trained_on, "train")["models"]:
            multiple = 2 ** model_settings(config, trained_on, model)["depth"]
            if value % multiple:
                raise ConfigError(f"config {setting_key(config, sample, stage, key)}",
                                  f"{value} is not a multiple of 2^depth = {multiple} ({model})",
                                  fix.format(multiple=multiple))

    _check_start_keys(config, sample)
    _check_denoise(config, sample)
    if {"simulate", "labels", "slices"} & set(config["samples"][sample]):  # it trains networks
        require_multiples("patches", "patch_size", sample,
                          "use a multiple of {multiple} or a smaller train.depth")
    source = config["samples"][sample].get("models_from", sample)
    if source in config["samples"]:
        require_multiples("segment", "tile", source, "use a multiple of {multiple}")
        if input_volumes(config, source) != input_volumes(config, sample):
            raise ConfigError(f"config samples.{sample}.models_from",
                              f"the networks of {source!r} read {input_volumes(config, source)} "
                              f"input volume(s) (denoise.input), {sample!r} would give them "
                              f"{input_volumes(config, sample)}",
                              f"give samples.{sample}.denoise the enabled and input of "
                              f"{source!r}, or take the networks of a sample trained like it")


def input_volumes(config: dict, sample: str) -> int:
    """How many volumes a sample's networks read: the reconstruction and the denoised one with
    denoise.input both, else one."""
    settings = stage_settings(config, sample, "denoise")
    return 2 if settings["enabled"] and settings["input"] == "both" else 1


# Sample keys that belong to one start point only.
_START_KEYS = {"aligned": "tiltseries", "angles": "tiltseries", "volume_axes": "volume"}


def _check_start_keys(config: dict, sample: str) -> None:
    """Keys that make sense for one start point only, and what a 2D dataset cannot have."""
    s = config["samples"][sample]
    kind = start_point(s)
    for key, needs in _START_KEYS.items():
        if key in s and kind != needs:
            raise ConfigError(f"config samples.{sample}.{key}", f"applies to `{needs}:` samples "
                              f"only, this one starts from `{kind}:`", f"remove `{key}`")
    if kind == "simulate":
        for key in ("labels", "label_values", "truth"):
            if key in s:
                raise ConfigError(f"config samples.{sample}.{key}", "a synthetic sample's "
                                  "phantom is its truth and its annotations (patches."
                                  "annotate_slices)", f"remove `{key}`")
    if "label_values" in s and not {"labels", "slices"} & set(s):
        raise ConfigError(f"config samples.{sample}.label_values", "there are no annotations "
                          "(`labels:`) for it to describe", "add `labels:` or remove it")
    if kind != "slices":
        return
    for key in ("labels", "truth"):
        if key in s:
            raise ConfigError(f"config samples.{sample}.{key}", "a `slices:` dataset brings its "
                              "own masks (slices.train.masks, slices.val.masks)", f"remove `{key}`")
    context = stage_settings(config, sample, "patches")["context"]
    if context:
        raise ConfigError(f"config {setting_key(config, sample, 'patches', 'context')}",
                          f"2.5D context {context} needs neighbouring slices of one volume; the "
                          "images of a `slices:` dataset are unrelated", "use context: 0")


def _check_denoise(config: dict, sample: str) -> None:
    """Noise2Inverse splits a tilt series: only samples that reconstruct one can be denoised."""
    settings = stage_settings(config, sample, "denoise")
    if not settings["enabled"]:
        return
    kind = start_point(config["samples"][sample])
    if kind in ("volume", "slices"):
        what = "a reconstruction made elsewhere" if kind == "volume" else "2D images"
        raise ConfigError(f"config {setting_key(config, sample, 'denoise', 'enabled')}",
                          f"denoising splits the tilt series into sub-reconstructions; sample "
                          f"{sample!r} starts from `{kind}:` ({what}) and has no tilts to split",
                          f"set samples.{sample}.denoise: {{enabled: false}}, or start the sample "
                          "from its tilt series (`tiltseries:`)")
    multiple = 2 ** settings["depth"]
    if settings["patch_size"] % multiple:
        raise ConfigError(f"config {setting_key(config, sample, 'denoise', 'patch_size')}",
                          f"{settings['patch_size']} is not a multiple of 2^depth = {multiple} "
                          "(denoise.depth)", f"use a multiple of {multiple} or a smaller "
                          "denoise.depth")


def stages_with_overrides(schema: dict) -> list[str]:
    """Stage sections a sample may override: sample keys that name a stage definition."""
    return [k for k in schema["$defs"]["sample"]["properties"]
            if k in schema["$defs"] and k != "simulate"]


def stage_settings(config: dict, sample: str, stage: str, schema: dict | None = None) -> dict:
    """A stage's settings for one sample: the top-level section overridden by samples.<s>.<stage>."""
    merged = merged_settings(config, sample, stage)
    if config["samples"][sample].get(stage):
        _check_section(merged, stage, f"samples.{sample}.{stage}", schema)
    return merged


def rule_params(config: dict, sample: str, stage: str) -> dict:
    """A stage's settings as rule parameters: those that decide its results (see RUNTIME_KEYS)."""
    settings = stage_settings(config, sample, stage)
    for key in RUNTIME_KEYS.get(stage, ()):
        settings.pop(key, None)
    return settings


def model_settings(config: dict, sample: str, model: str, schema: dict | None = None) -> dict:
    """One network's training settings: the sample's `train` settings with `train.per_model.<model>`
    on top, without the keys that concern all models (`models`, `per_model`), so that editing one
    model's settings changes only that model's rule parameters (and reruns only its jobs)."""
    merged = stage_settings(config, sample, "train", schema)
    own = (merged.get("per_model") or {}).get(model)
    if own:
        merged.update(copy.deepcopy(own))
        _check_section(merged, "train", setting_key(config, sample, "train", "per_model") + f".{model}",
                       schema)
    merged.pop("per_model", None)
    merged.pop("models", None)
    return canonical(merged)


def _check_section(merged: dict, stage: str, where: str, schema: dict | None) -> None:
    schema = schema or load_schema()
    sub = {"$defs": schema["$defs"], **schema["$defs"][stage]}
    err = next(iter(_DefaultFilling(sub).iter_errors(merged)), None)
    if err is not None:
        key, problem, fix = _describe(err)
        key = where + (f".{key}" if err.absolute_path or err.validator == "additionalProperties" else "")
        raise ConfigError(f"config {key}", problem, fix)


def check_files(config: dict, workdir: str | Path = ".") -> None:
    """Fail before any job runs when a sample names a file, folder or pattern that finds nothing."""
    workdir = Path(workdir)
    for name, sample in config["samples"].items():
        for key in ("tiltseries", "angles", "volume", "truth"):
            value = sample.get(key)
            if not isinstance(value, str):
                continue
            if (workdir / value).is_dir():
                from .readers import file_format  # NumPy: only when needed

                try:
                    file_format(workdir / value)
                except InputError as exc:
                    raise ConfigError(f"config samples.{name}.{key}", f"{value}: {exc.problem}",
                                      exc.fix) from None
            if not (workdir / value).is_file():
                raise ConfigError(f"config samples.{name}.{key}",
                                  f"file not found: {value} (looked in {workdir.resolve()})",
                                  "paths are relative to the working directory; fix the path "
                                  "or copy the file there")
        labels = sample.get("labels")
        if labels is not None and not (workdir / labels).exists():
            raise ConfigError(f"config samples.{name}.labels",
                              f"not found: {labels} (looked in {workdir.resolve()})",
                              "give a label volume file or a folder of per-slice masks, relative "
                              "to the working directory")
        for part in ("train", "val"):
            for kind, pattern in ((sample.get("slices") or {}).get(part) or {}).items():
                if not expand(pattern, workdir):
                    raise ConfigError(f"config samples.{name}.slices.{part}.{kind}",
                                      f"the pattern {pattern!r} matches no file (looked in "
                                      f"{workdir.resolve()})", "fix the glob pattern, e.g. "
                                      "'data/train/images/*.tif'")

"""The library's shape: stage subpackages importing only earlier stages (no cycles), small modules
and functions, typed settings that match the schema, one label vocabulary."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import typing
from pathlib import Path

import pytest

from stemtomo.core.config import load_schema
from stemtomo.core.labels import CLASS_NAMES, CLASSES, MODELS, TABLE_COLUMNS
from stemtomo.core.settings import Section

LIB = Path(__file__).resolve().parents[1] / "workflow" / "stemtomo"
# Pipeline order: a package may import itself and those before it, never a later one.
ORDER = ["core", "tomo", "simulate", "prep", "align", "recon", "learn", "evaluate", "export",
         "annotate"]
SETTINGS = ["simulate.settings:SimulateSettings", "prep.settings:ImportSettings",
            "align.settings:AlignSettings", "recon.settings:ReconstructSettings",
            "learn.settings:PatchSettings", "learn.settings:TrainSettings",
            "learn.settings:SegmentSettings", "export.settings:ExportSettings"]


def modules() -> list[Path]:
    return sorted(p for p in LIB.rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """stemtomo subpackages a module imports (absolute or relative, at any depth)."""
    own = path.relative_to(LIB).parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(own[:-1])[:len(own) - node.level]
            target = base + (node.module.split(".") if node.module else [])
            if not target:  # `from .. import x` at the top: x names the package
                target = [a.name for a in node.names][:1]
            found.add(target[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stemtomo."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("stemtomo.")}
    return found & set(ORDER)


def test_every_module_lives_in_a_stage_package():
    top = {p.relative_to(LIB).parts[0] for p in modules()} - {"__init__.py"}
    assert top == set(ORDER)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(LIB)))
def test_no_stage_imports_a_later_stage(path):
    own = path.relative_to(LIB).parts[0]
    if own == "__init__.py":
        return
    later = {p for p in imported_packages(path) if ORDER.index(p) > ORDER.index(own)}
    assert not later, f"{path.relative_to(LIB)} imports later stage(s) {sorted(later)}"


def test_module_import_graph_has_no_cycles():
    graph: dict[str, set[str]] = {}
    names = {str(p.relative_to(LIB).with_suffix("")).replace("/", "."): p for p in modules()}
    for name, path in names.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                parts = name.split(".")[:-1] if not name.endswith("__init__") else name.split(".")[:-1]
                base = parts[:len(parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                for a in node.names:
                    for cand in (f"{mod}.{a.name}", mod, f"{mod}.__init__"):
                        if cand in names and cand != name:
                            deps.add(cand)
                            break
        graph[name] = deps
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        state[n] = 1
        for d in graph[n]:
            assert state.get(d) != 1, f"import cycle: {' → '.join(trail + [n, d])}"
            if d not in state:
                visit(d, trail + [n])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [])


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(LIB)))
def test_modules_and_functions_stay_small(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= 400, f"{len(lines)} lines"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= 80, f"{node.name} is {length} lines"


def _schema_node(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].split("/")[-1]] | {k: v for k, v in node.items()
                                                              if k != "$ref"}
    return node


def _check_fields(cls: type[Section], node: dict, schema: dict, where: str) -> None:
    props = set(_schema_node(schema, node)["properties"]) - cls.NOT_FIELDS
    fields = {f.name for f in dataclasses.fields(cls)}
    assert fields == props, f"{where}: fields {sorted(fields - props)} not in the schema, " \
        f"schema properties {sorted(props - fields)} not in {cls.__name__}"
    hints = typing.get_type_hints(cls)
    sub = _schema_node(schema, node)["properties"]
    for name in fields:
        if isinstance(hints[name], type) and issubclass(hints[name], Section):
            _check_fields(hints[name], sub[name], schema, f"{where}.{name}")


@pytest.mark.parametrize("spec", SETTINGS)
def test_typed_settings_hold_exactly_the_schema_properties(spec):
    module, name = spec.split(":")
    cls = getattr(importlib.import_module(f"stemtomo.{module}"), name)
    schema = load_schema()
    _check_fields(cls, schema["$defs"][cls.SCHEMA], schema, cls.SCHEMA)


def test_settings_are_frozen_and_refuse_a_mismatched_section():
    from stemtomo.core.config import validate_config
    from stemtomo.core.errors import ConfigError
    from stemtomo.learn.settings import TrainSettings

    section = validate_config({"samples": {"t": {"simulate": {}}}})["train"]
    s = TrainSettings.from_section(section)  # `models`/`per_model` select jobs: not fields
    assert s.class_weights == (0.2, 0.3, 0.5) and s.as_dict()["class_weights"] == [0.2, 0.3, 0.5]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.lr = 1.0
    with pytest.raises(ConfigError, match=r"train: settings do not match.*unknown \['lrate'\]"):
        TrainSettings.from_section({**section, "lrate": 0.1})
    with pytest.raises(ConfigError, match=r"missing \['lr'\]"):
        TrainSettings.from_section({k: v for k, v in section.items() if k != "lr"})


def test_one_label_vocabulary_feeds_the_schema_and_the_rules():
    schema = load_schema()["$defs"]["train"]["properties"]
    assert tuple(schema["models"]["items"]["enum"]) == MODELS
    assert tuple(schema["models"]["default"]) == MODELS
    assert tuple(schema["per_model"]["propertyNames"]["enum"]) == MODELS
    assert {c for c, _ in TABLE_COLUMNS} == set(CLASSES) == set(CLASS_NAMES)
    common = (LIB.parent / "rules" / "common.smk").read_text()
    assert 'model="|".join(MODELS)' in common

"""Conda envs: every rule names one that exists and provides what its script imports.

Conda channels are unreachable here, so this is static: the imports of each rule's script and of
every stemtomo module it reaches (transitively, including imports inside functions) are mapped to
conda-forge package names and must all be listed in the rule's env file.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "workflow" / "rules"
LIB = ROOT / "workflow" / "stemtomo"

# The one mapping from import names to conda-forge packages. A new third-party import must be
# added here (and to the env of every rule that reaches it), or these tests fail.
CONDA_PACKAGE = {
    "numpy": "numpy", "scipy": "scipy", "tifffile": "tifffile", "mrcfile": "mrcfile",
    "matplotlib": "matplotlib-base", "tqdm": "tqdm", "yaml": "pyyaml", "jsonschema": "jsonschema",
    "skimage": "scikit-image", "torch": "pytorch", "astra": "astra-toolbox", "tomopy": "tomopy",
    "vtk": "vtk", "paraview": "paraview", "PIL": "pillow",
}
# Provided by Snakemake's own process, never by a rule's env.
SNAKEMAKE_SIDE = {"snakemake"}
# Imports the scanner cannot see because they run in a child process: the export renders
# `scene.py` (ParaView's Python) with the env's pvbatch.
CHILD_PROCESS_IMPORTS = {"export": {"paraview"}}


def rule_blocks() -> list[tuple[str, Path, dict[str, str]]]:
    """(rule name, .smk file, {directive: value}) for every rule in workflow/rules; "gpu" is
    there for the rules that declare `gpu=1`."""
    out = []
    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M):
            body = m.group(2)
            directives = {}
            for d in ("conda", "script"):
                dm = re.search(rf"^\s+{d}:\s*\n\s+\"([^\"]+)\"", body, re.M)
                if dm:
                    directives[d] = dm.group(1)
                else:  # a directive written another way must not slip past these tests
                    assert not re.search(rf"^\s+{d}:", body, re.M), \
                        f"rule {m.group(1)}: write `{d}:` with its path on the next line"
            if re.search(r"^\s+gpu\s*=\s*1\b", body, re.M):  # a GPU rule (resources: gpu=1)
                directives["gpu"] = "1"
            out.append((m.group(1), smk, directives))
    return out


def _module_file(dotted: str) -> list[Path]:
    """The files that importing stemtomo module `dotted` (e.g. stemtomo.align.stage) runs: each
    package's __init__ on the way and the module itself."""
    parts = dotted.split(".")[1:]
    files, here = [LIB / "__init__.py"], LIB
    for p in parts:
        if (here / p / "__init__.py").exists():
            here = here / p
            files.append(here / "__init__.py")
        elif (here / f"{p}.py").exists():
            files.append(here / f"{p}.py")
            break
        else:
            break
    return files


def _stemtomo_name(path: Path, node: ast.ImportFrom) -> str:
    """Absolute dotted name of a relative import inside the library."""
    package = path.relative_to(LIB.parent).with_suffix("").parts[:-1]  # __init__ too
    base = list(package[:len(package) - node.level + 1])
    return ".".join(base + ([node.module] if node.module else []))


def third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules imported by a script and the stemtomo modules it reaches
    (package __init__ files included); local helper modules beside the script are followed too."""
    stdlib = set(sys.stdlib_module_names)
    seen: set[Path] = set()
    found: set[str] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside stemtomo
                    base = _stemtomo_name(path, node)
                    todo += _module_file(base)
                    todo += [f for a in node.names for f in _module_file(f"{base}.{a.name}")]
                    continue
                names = [node.module]
                if node.module.split(".")[0] == "stemtomo":
                    todo += [f for a in node.names for f in _module_file(f"{node.module}.{a.name}")]
            for name in names:
                top = name.split(".")[0]
                if top == "stemtomo":
                    todo += _module_file(name)
                elif (script.parent / f"{top}.py").exists() and top != script.stem:
                    todo.append(script.parent / f"{top}.py")  # e.g. scripts/_libpath.py
                elif top not in stdlib and top not in SNAKEMAKE_SIDE:
                    found.add(top)
    return found


def env_packages(env: Path) -> dict[str, str]:
    spec = yaml.safe_load(env.read_text())
    pkgs = {}
    for dep in spec["dependencies"]:
        assert isinstance(dep, str), f"{env.name}: pip sections are not allowed ({dep})"
        name, _, version = dep.partition("=")
        assert re.fullmatch(r"[A-Za-z0-9_.-]+\s*", name), f"{env.name}: pin {dep!r} with '=' only"
        pkgs[name.strip()] = version.strip("= ")
    return pkgs


SCRIPT_RULES = [r for r in rule_blocks() if "script" in r[2]]


def test_rules_are_found():
    names = {r[0] for r in rule_blocks()}
    assert {"simulate", "import_tiltseries", "align", "reconstruct_slab", "reconstruct",
            "patches", "train", "segment_slab", "segment", "evaluate_model", "evaluate",
            "export", "reconstruct_mrc"} <= names
    assert set(CHILD_PROCESS_IMPORTS) <= {r[0] for r in SCRIPT_RULES}


@pytest.mark.parametrize("env", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_files_parse_and_pin_conda_forge(env):
    spec = yaml.safe_load(env.read_text())
    assert spec["channels"] == ["conda-forge", "nodefaults"]
    for name, version in env_packages(env).items():
        assert re.fullmatch(r"[\d.]+(\*|)", version), f"{env.name}: {name} is not pinned ({version!r})"
    assert "python" in env_packages(env)


@pytest.mark.parametrize("rule,smk,directives", SCRIPT_RULES, ids=[r[0] for r in SCRIPT_RULES])
def test_rule_env_provides_what_its_script_imports(rule, smk, directives):
    assert "conda" in directives, f"rule {rule} in {smk.name} has a script but no conda: env"
    env = (smk.parent / directives["conda"]).resolve()
    assert env.is_file(), f"rule {rule}: conda env {directives['conda']} does not exist"
    script = (smk.parent / directives["script"]).resolve()
    assert script.is_file(), f"rule {rule}: script {directives['script']} does not exist"
    imports = third_party_imports(script) | CHILD_PROCESS_IMPORTS.get(rule, set())
    unmapped = imports - set(CONDA_PACKAGE)
    assert not unmapped, f"add {sorted(unmapped)} to CONDA_PACKAGE in tests/test_envs.py"
    missing = {CONDA_PACKAGE[m] for m in imports} - set(env_packages(env))
    assert not missing, f"rule {rule}: {env.name} lacks {sorted(missing)}"


@pytest.mark.parametrize("env", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_envs_with_pytorch_take_the_cuda_build(env):
    pkgs = env_packages(env)
    if "pytorch" in pkgs:
        assert pkgs.get("pytorch-gpu") == pkgs["pytorch"], f"{env.name}: pin pytorch-gpu too"


def test_import_scanner_follows_library_modules_and_lazy_imports():
    # mrcfile and tifffile are imported inside functions of readers/io; tqdm via tomo.joseph.
    assert {"numpy", "tifffile", "mrcfile", "matplotlib"} <= third_party_imports(
        ROOT / "workflow" / "scripts" / "import.py")
    assert {"scipy", "tqdm"} <= third_party_imports(ROOT / "workflow" / "scripts" / "simulate.py")


def test_scanner_flags_an_unmapped_import(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import os\nimport h5py\nfrom stemtomo.core import geometry\n")
    assert third_party_imports(script) == {"h5py", "numpy", "scipy"}


def test_scanner_follows_relative_imports_across_subpackages():
    # align.stage reaches tomo.projectors (relative, two levels up) and through it nothing heavy
    # at module level, but tomo.algorithms imports tqdm and core.geometry scipy.
    found = third_party_imports(LIB / "align" / "stage.py")
    assert {"numpy", "scipy", "tqdm"} <= found
    assert {"torch", "astra"} <= found  # lazily, inside the GPU projector


def test_every_gpu_rule_gets_a_gpu_partition_in_the_slurm_profile():
    """A rule declaring `gpu=1` that the SLURM profile leaves to the defaults would ask for a GPU
    on the CPU partition (the executor turns gpu into --gpus), and the job would never start."""
    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    declared = {name for name, _, directives in rule_blocks() if "gpu" in directives}
    assert {"align", "reconstruct_slab", "train", "segment_slab", "calibrate_ensemble",
            "denoise"} <= declared
    missing = {r for r in declared
               if profile["set-resources"].get(r, {}).get("slurm_partition") != "gpu"}
    assert not missing, f"workflow/profiles/slurm/config.yaml: give {sorted(missing)} the GPU partition"

"""What produced an output: stemtomo's version (git describe), the versions of the packages the
rule imported, and its effective parameters. Added to every JSON sidecar by runner.run_rule."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .. import __version__

# import name → distribution name, for the third-party packages a rule may use
PACKAGES = {"numpy": "numpy", "scipy": "scipy", "tifffile": "tifffile", "mrcfile": "mrcfile",
            "matplotlib": "matplotlib", "torch": "torch", "astra": "astra-toolbox",
            "tomopy": "tomopy", "skimage": "scikit-image", "yaml": "pyyaml",
            "jsonschema": "jsonschema", "tqdm": "tqdm", "snakemake": "snakemake"}


def stemtomo_version() -> str:
    """`git describe --always --dirty` of the checkout the code runs from, else the package version."""
    root = Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+g{out.stdout.strip()}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return __version__


def package_versions() -> dict[str, str]:
    """Versions of the packages imported in this process (conda and pip installs alike)."""
    found = {}
    for module, dist in PACKAGES.items():
        if module not in sys.modules:
            continue
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # e.g. conda's astra without dist-info
            found[dist] = str(getattr(sys.modules[module], "__version__", "unknown"))
    return found


def _plain(value):
    """JSON-able copy of Snakemake params (Namedlists, tuples, numpy scalars)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def record(snakemake) -> dict:
    params = {k: v for k, v in snakemake.params.items()} if hasattr(snakemake.params, "items") else {}
    return {"stemtomo": stemtomo_version(), "rule": snakemake.rule,
            "wildcards": dict(snakemake.wildcards), "python": sys.version.split()[0],
            "packages": package_versions(), "params": _plain(params)}

"""Running Snakemake itself from the tests: a config written into a work folder, the stemtomo
Snakefile, two cores; what a run planned and whether it planned nothing. Shared by the workflow
tests of every stage."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# A tiny synthetic sample that runs end to end in a minute or two on 2 cores. Its one- or
# two-epoch networks need not learn every class yet (train.min_class_dice 0).
TINY = {"simulate": {"size": 48, "pixel_size_nm": 1.0, "tilt": {"start": -60, "stop": 60, "step": 4}},
        "patches": {"patch_size": 32, "train_patches": 64},
        "train": {"epochs": 2, "base": 4, "depth": 2, "models": ["unet", "attention_res_unet"],
                  "min_class_dice": 0.0}}


def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(cfg), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    stats = result.stdout.split("Job stats:")[-1] if "Job stats:" in result.stdout else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)
            if m.group(1) != "total"}


def nothing_to_do(result: subprocess.CompletedProcess) -> bool:
    """A dry run that succeeded and planned no job (not one that failed before planning)."""
    assert result.returncode == 0, result.stderr[-3000:]
    return "Nothing to be done" in result.stdout + result.stderr and not planned_jobs(result)

"""The SLURM profile on a real one-node SLURM (tests/slurm/cluster.sh): jobs go through sbatch and
the outputs equal a local run's. Needs root (CI runs as root); skips with the reason elsewhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from smk import ROOT, TINY, planned_jobs, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
CONFIG = {"samples": {"tiny": {**TINY, "train": {**TINY["train"], "models": ["unet"]}}}}
GPU_RULES = ("align", "reconstruct_slab", "train", "segment_slab", "calibrate_ensemble",
             "denoise_split", "denoise")


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("the SLURM test starts munged/slurmctld/slurmd and needs root (CI runs as root)")
    if shutil.which("slurmctld") is None:
        pytest.skip("SLURM is not installed: `make test` installs it as root (tests/setup-system.sh)")
    t0 = time.perf_counter()
    r = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=120)
    if r.returncode and "belongs to another SLURM" in r.stderr:
        pytest.skip(r.stderr.strip())
    assert r.returncode == 0, r.stdout + r.stderr
    yield time.perf_counter() - t0
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, timeout=60)


def slurm_jobs() -> list[str]:
    out = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i|%T|%k"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_the_slurm_profile_runs_the_demo_through_slurm(cluster, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    remote.mkdir()
    t0 = time.perf_counter()
    r = snakemake(local, CONFIG)
    assert r.returncode == 0, r.stderr[-3000:]
    local_seconds = time.perf_counter() - t0
    before = max((int(j.split("|")[0]) for j in slurm_jobs()), default=0)
    t0 = time.perf_counter()
    overrides = [
        "--profile", str(ROOT / "workflow/profiles/slurm"),
        # test-only: this node's partition, no GPUs, squeue polling (no accounting); the plugin
        # waits init, then init + 10 s, ... while jobs run: init 1 s finds a 9 s job at 12 s, not 20 s
        "--default-resources", "slurm_partition=debug", "slurm_account=root", "runtime=30",
        "mem_mb=2000",
        "--set-resources", *[f"{rule}:gpu=0" for rule in GPU_RULES],
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "1", "--jobs", "4",
    ]
    cmd = ["timeout", "-k", "10", "900", *snakemake_args(remote), *overrides]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=960)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    # a real run logs its job table to stderr; `all` is a local rule
    ran = sum(n for rule, n in planned_jobs(subprocess.CompletedProcess(cmd, 0, r.stderr)).items()
              if rule != "all")
    jobs = [j for j in slurm_jobs() if int(j.split("|")[0]) > before]  # this run's jobs
    completed = [j for j in jobs if j.split("|")[1] == "COMPLETED"]
    rules = {m.group(1) for j in completed if (m := re.search(r"rule_(\w+?)_wildcards", j))}
    print(f"SLURM: daemons up in {cluster:.1f} s; {len(completed)} jobs, demo finished in "
          f"{seconds:.1f} s (local run {local_seconds:.1f} s); rules {sorted(rules)}")
    assert len(completed) >= ran >= 11, (jobs, r.stderr[-2000:])
    assert {"simulate", "reconstruct_slab", "train", "evaluate"} <= rules, jobs
    for f in ("02_recon/volume.tif", "05_segment/unet/labels.tif"):
        a = tifffile.imread(local / "results/tiny" / f)
        b = tifffile.imread(remote / "results/tiny" / f)
        assert np.array_equal(a, b), f
    for f in ("06_evaluate/metrics.csv", "06_evaluate/unet_particles.csv"):
        assert (local / "results/tiny" / f).read_text() == (remote / "results/tiny" / f).read_text(), f


def snakemake_args(workdir: Path) -> list[str]:
    """The command test_workflow.snakemake runs, with the config it writes (for timeout -k)."""
    import sys

    import yaml

    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
            str(workdir), "--configfile", str(cfg)]

"""Benchmark: Noise2Inverse denoising on the low-dose phantom (workflow/presets/low_dose.yaml: the
demo's catalyst at 150 instead of 600 e/Å² per image, 128³, 71 tilts, MLEM 50).

Runs the preset's sample through Snakemake in a scratch folder as pairs, with and without
denoise.enabled (same simulation, alignment, recipe and seeds; one pair per `--seeds` training
seed), up to the evaluation of `--models`, then measures:
- the MLEM error curve: relative error ‖s·x − ρ‖/‖ρ‖ (least-squares scale s) of MLEM after n
  iterations against the phantom density ρ (00_simulate/phantom.tif), on the run's aligned series
  (continued from one count to the next: the same iterates as separate runs);
- the same error of the reconstruction the pipeline wrote and of its denoised form;
- Dice (Pt, γ-alumina, background) of the segmentation with and without denoising, per seed;
- the stage's time on the demo size run alone in this process (wall and CPU seconds, `--threads`
  torch threads), beside its jobs' wall time in the pipeline, with the load average (the
  machine may be shared).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import yaml
from common import section  # bench/common.py, beside this script (puts workflow/ first)

from stemtomo.core.config import validate_config
from stemtomo.core.readers import read_angle_file, read_tiltseries
from stemtomo.learn.denoise import denoise_volume
from stemtomo.learn.denoise_data import relative_error
from stemtomo.learn.denoise_split import reconstruct_split
from stemtomo.learn.settings import DenoiseSettings
from stemtomo.recon.settings import ReconstructSettings
from stemtomo.tomo.algorithms import mlem
from stemtomo.tomo.projectors import make_projector

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "workflow" / "presets" / "low_dose.yaml"
ITERATIONS = (5, 10, 15, 20, 25, 30, 40, 50, 70, 100)


def preset(size: int | None = None, train_epochs: int | None = None) -> dict:
    """The low-dose preset, optionally smaller (simulate.size) or with fewer training epochs."""
    cfg = yaml.safe_load(PRESET.read_text())
    (sample,) = cfg["samples"].values()
    if size:
        sample["simulate"]["size"] = size
    if train_epochs:
        cfg.setdefault("train", {})["epochs"] = train_epochs
    return cfg


def config(cfg: dict, models: list[str], seeds: list[int]) -> dict:
    """The preset's sample as `denoised<seed>` and as `raw<seed>` (the same sample with denoise
    disabled) for each training seed: same simulation, alignment and recipe."""
    (sample,) = cfg["samples"].values()
    cfg["samples"] = {}
    for seed in seeds:
        cfg["samples"][f"denoised{seed}"] = {**sample, "train": {"seed": seed},
                                             "denoise": {"seed": seed}}
        cfg["samples"][f"raw{seed}"] = {**sample, "train": {"seed": seed},
                                        "denoise": {"enabled": False}}
    cfg.setdefault("train", {})["models"] = models
    return cfg


def run_pipeline(workdir: Path, cfg: dict, threads: int, segment: bool = True) -> float:
    """Both samples up to their evaluation (segment=False: the denoised ones up to the denoise
    stage only); returns the wall time."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/{s}/06_evaluate/metrics.csv" if segment else
               f"results/{s}/02b_denoise/denoise.json" for s in cfg["samples"]
               if segment or s.startswith("denoised")]
    cmd = [sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores",
           "2", "--set-threads", *(f"{r}={threads}" for r in ("denoise", "train", "segment_slab"))]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"snakemake failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - t0


def mlem_curve(res: Path, threads: int) -> dict:
    """Error after each count in ITERATIONS, MLEM as the reconstruct stage runs it (joseph-cpu,
    data clipped at 0, full height)."""
    phantom = tifffile.imread(res / "00_simulate" / "phantom.tif")
    series = np.maximum(read_tiltseries(res / "01_align" / "tiltseries.tif").data, 0)
    angles = read_angle_file(res / "01_align" / "tiltseries.tlt")
    nx = series.shape[2]
    projector = make_projector("joseph-cpu", angles, (nx, series.shape[1], nx), threads=threads)
    x, done, curve = None, 0, {}
    for n in ITERATIONS:
        x = mlem(projector, series.astype(np.float32), n - done, x0=x).volume
        done = n
        curve[n] = round(relative_error(x, phantom), 4)
    best = min(curve, key=curve.get)
    return {"curve": curve, "best_iterations": best, "best_error": curve[best]}


def dice(res: Path) -> dict:
    with open(res / "06_evaluate" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    return {r["model"]: {k: round(float(r[f"{k}_dice"]), 4) for k in ("pt", "alumina", "background")}
            for r in rows}


def stage_time(res: Path, settings: DenoiseSettings, threads: int) -> dict:
    """The stage's compute on the demo size, alone and in this process (wall and CPU seconds):
    the K sub-reconstructions and the denoiser's training and application, as the rules run
    them (the pipeline's own jobs shared the cores with other jobs)."""
    import torch

    torch.set_num_threads(threads)
    series = read_tiltseries(res / "01_align" / "tiltseries.tif").data
    angles = read_angle_file(res / "01_align" / "tiltseries.tlt")
    recon = settings_of(ReconstructSettings, preset())
    full = tifffile.imread(res / "02_recon" / "volume.tif")
    out, t, c = {}, time.perf_counter(), time.process_time()
    splits = [reconstruct_split(series, angles, recon, k, settings.splits, threads=threads)[0]
              for k in range(settings.splits)]
    out["sub_reconstructions"] = {"wall_s": round(time.perf_counter() - t, 1),
                                  "cpu_s": round(time.process_time() - c, 1)}
    t, c = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        denoised, record = denoise_volume(full, splits, settings, str(Path(tmp) / "ck.pt"))
    out["denoiser"] = {"wall_s": round(time.perf_counter() - t, 1),
                       "cpu_s": round(time.process_time() - c, 1), **record["seconds"]}
    out["total_wall_s"] = round(out["sub_reconstructions"]["wall_s"] + out["denoiser"]["wall_s"], 1)
    out["total_cpu_s"] = round(out["sub_reconstructions"]["cpu_s"] + out["denoiser"]["cpu_s"], 1)
    out["mean_patches_per_s"] = round(float(np.mean([h["patches_per_s"] for h in record["history"]])), 1)
    out["error"] = round(relative_error(denoised, tifffile.imread(res / "00_simulate" / "phantom.tif")), 4)
    out["device"], out["threads"] = record["device"], threads
    return out


def rules_wall(res: Path) -> dict:
    """Wall seconds of the pipeline's denoise jobs (from their logs; they shared the cores), and
    the stage's own record of its parts (denoise.json)."""
    walls = {}
    for log in sorted((res / "logs").glob("denoise*.log")):
        found = re.findall(r"rule \w+ finished in ([\d.]+) s", log.read_text())
        walls[log.stem] = float(found[-1]) if found else None
    record = json.loads((res / "02b_denoise" / "denoise.json").read_text())
    walls["denoise.json"] = {**record["seconds"], "epochs": record["epochs"],
                             "resumed_from_epoch": record["resumed_from_epoch"],
                             "patches_per_s": [round(h["patches_per_s"], 1) for h in record["history"]],
                             "loss": [round(v, 6) for v in record["loss"]]}
    return walls


def settings_of(cls, cfg: dict):
    """A stage's typed settings from a config's section (schema defaults filled in)."""
    full = validate_config({"samples": {"b": {"simulate": {}}}, cls.SCHEMA: cfg.get(cls.SCHEMA, {})})
    return cls.from_section(full[cls.SCHEMA])


def errors(res_raw: Path, res_denoised: Path, curve: dict) -> dict:
    phantom = tifffile.imread(res_raw / "00_simulate" / "phantom.tif")
    return {"mlem_best": curve["best_error"], "mlem_best_iterations": curve["best_iterations"],
            "reconstruction": round(relative_error(tifffile.imread(res_raw / "02_recon" / "volume.tif"),
                                                   phantom), 4),
            "denoised": round(relative_error(tifffile.imread(res_denoised / "02b_denoise" / "volume.tif"),
                                             phantom), 4)}


def gains(by_seed: dict, models: list[str]) -> dict:
    """Pt Dice denoised − raw per model: per seed and the mean."""
    out = {}
    for m in models:
        per_seed = [round(d["denoised"][m]["pt"] - d["raw"][m]["pt"], 4) for d in by_seed.values()]
        out[m] = {"per_seed": per_seed, "mean": round(float(np.mean(per_seed)), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(ROOT / "bench" / "out" / "denoise"))
    ap.add_argument("--models", nargs="+", default=["unet"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (pairs)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the learning rules")
    ap.add_argument("--size", type=int, help="simulate.size instead of the preset's 128 (smaller: faster)")
    ap.add_argument("--train-epochs", type=int, help="train.epochs instead of the preset's 15")
    ap.add_argument("--no-segmentation", action="store_true",
                    help="only the denoised sample, up to the denoise stage: errors and times, no Dice")
    ap.add_argument("--no-stage-alone", action="store_true",
                    help="skip rerunning the stage alone in this process (times from the jobs only)")
    args = ap.parse_args()
    cfg = preset(args.size, args.train_epochs)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict = {"benchmark": "denoise", "preset": str(PRESET.relative_to(ROOT)), "cpus": os.cpu_count(),
                 "threads": args.threads, "seeds": args.seeds, "size": cfg["samples"]["low_dose"][
                     "simulate"]["size"], "train_epochs": cfg["train"]["epochs"],
                 "load_average_before": os.getloadavg()}
    section(out, "pipeline_wall_s", run_pipeline, workdir, config(cfg, args.models, args.seeds),
            args.threads, not args.no_segmentation)
    out["load_average_after_pipeline"] = os.getloadavg()
    if not isinstance(out["pipeline_wall_s"], float):
        print(json.dumps(out, indent=1))
        sys.exit(1)
    res = workdir / "results"
    first = args.seeds[0]
    # the raw sample's simulation, alignment and reconstruction are the denoised one's (same seeds)
    raw = res / (f"denoised{first}" if args.no_segmentation else f"raw{first}")
    section(out, "mlem", mlem_curve, raw, args.threads)
    section(out, "error", errors, raw, res / f"denoised{first}", out["mlem"])
    if not args.no_segmentation:
        section(out, "dice", lambda: {f"seed{s}": {"raw": dice(res / f"raw{s}"),
                                                   "denoised": dice(res / f"denoised{s}")}
                                      for s in args.seeds})
        section(out, "pt_dice_gain", gains, out["dice"], args.models)
    settings = settings_of(DenoiseSettings, cfg)
    section(out, "pipeline_denoise_jobs_wall_s", rules_wall, res / f"denoised{first}")
    if not args.no_stage_alone:
        section(out, "stage_alone", stage_time, res / f"denoised{first}", settings, args.threads)
    out["load_average_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

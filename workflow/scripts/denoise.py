"""Rule denoise: Noise2Inverse on the sample's sub-reconstructions, applied to its reconstruction;
resumes from its checkpoint after a kill."""

import json
import logging
from pathlib import Path

import numpy as np
import torch

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.learn.denoise import denoise_volume
from stemtomo.learn.denoise_figures import comparison
from stemtomo.learn.settings import DenoiseSettings

log = logging.getLogger("stemtomo.denoise")


def sub_volumes(slabs: list[str], records: list[dict]) -> list[np.ndarray]:
    """Each split's slabs joined along the rows, in split order."""
    parts: dict[int, list] = {}
    for path, record in zip(slabs, records, strict=True):
        parts.setdefault(record["split"], []).append((record["rows"][0], path))
    return [np.concatenate([np.load(p) for _, p in sorted(parts[k])], axis=1) for k in sorted(parts)]


def main(smk) -> None:
    settings = DenoiseSettings.from_section(smk.params.settings)
    torch.set_num_threads(smk.threads)
    torch.backends.cudnn.benchmark = True  # fixed shapes
    raw = read_tiltseries(smk.input.volume)
    records = [json.loads(Path(p).read_text()) for p in smk.input.records]
    splits = sub_volumes(list(smk.input.slabs), records)
    denoised, record = denoise_volume(raw.data, splits, settings, smk.params.checkpoint,
                                      progress=True)
    log.info("device: %s", record["device"])
    io.write_tiff(smk.output.volume, denoised, raw.pixel_size_nm)
    by_split = {r["split"]: r for r in records}
    subsets = [by_split[k] for k in sorted(by_split)]
    seconds_split = sum(r["seconds"] for r in records)
    total = seconds_split + record["seconds"]["train"] + record["seconds"]["apply"]
    record["seconds"] = {"sub_reconstructions": round(seconds_split, 3), **record["seconds"],
                         "total": round(total, 3)}
    record.update(splits=len(subsets), subsets=[r["tilts"] for r in subsets],
                  subset_angles=[r["angles"] for r in subsets],
                  reconstruction={k: records[0][k] for k in ("algorithm", "backend", "iterations",
                                                             "subsets")},
                  shape_zyx=list(denoised.shape), voxel_size_nm=raw.pixel_size_nm,
                  mvoxel_per_s=round(denoised.size / 1e6 / max(total, 1e-9), 4),
                  relative_change=float(np.linalg.norm(denoised - raw.data)
                                        / max(np.linalg.norm(raw.data), 1e-30)))
    io.write_json(smk.output.json, record)
    comparison(smk.output.figure, raw.data, denoised, raw.pixel_size_nm, record["loss"])
    Path(smk.params.checkpoint).unlink(missing_ok=True)  # finished: nothing left to resume
    log.info("throughput: %d sub-reconstructions in %.1f s, %d epochs in %.1f s, applied in "
             "%.1f s: %.3f Mvoxel/s over the stage on %s", len(subsets), seconds_split,
             record["epochs"], record["seconds"]["train"], record["seconds"]["apply"],
             record["mvoxel_per_s"], record["device"])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

"""Rule segment: join one model's slab labels into the label volume, clean it up (small
impossible components), and write its record."""

import json
import logging
from pathlib import Path

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.labels import class_statistics
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.core.settings import job_settings
from stemtomo.learn.cleanup import clean_labels
from stemtomo.learn.settings import SegmentSettings

log = logging.getLogger("stemtomo.segment")


def main(smk) -> None:
    settings = SegmentSettings.from_section(job_settings(smk, "segment"))
    px = read_tiltseries(smk.input.volume).pixel_size_nm
    labels = np.concatenate([np.load(p) for p in smk.input.labels], axis=0)
    records = [json.loads(Path(p).read_text()) for p in smk.input.records]
    labels, cleaned = clean_labels(labels, px or 1.0, settings.cleanup.alumina_min_nm3,
                                   settings.cleanup.pt_min_nm3)
    log.info("clean-up: %d γ-alumina components under %g nm³ (%d voxels) → background; %d Pt "
             "components under %g nm³ (%d voxels) → their surroundings",
             cleaned["alumina_components_removed"], settings.cleanup.alumina_min_nm3,
             cleaned["alumina_voxels_removed"], cleaned["pt_components_removed"],
             settings.cleanup.pt_min_nm3, cleaned["pt_voxels_removed"])
    io.write_tiff(smk.output.labels, labels, px)
    if settings.probabilities:
        probs = np.concatenate([np.load(p) for p in smk.input.probabilities], axis=1)
        io.write_tiff(smk.params.probabilities, probs, px, axes="CZYX")
    else:  # one from an earlier run with probabilities on would no longer match these labels
        Path(smk.params.probabilities).unlink(missing_ok=True)
    seconds = sum(r["seconds"] for r in records)
    fractions = class_statistics(labels)["fractions"]  # predictions have no unlabelled voxels
    io.write_json(smk.output.json, {
        "model": smk.wildcards.model, "device": records[0]["device"], "tta": settings.tta,
        "slabs": len(records), "shape_zyx": list(labels.shape), "seconds": round(seconds, 2),
        "mvoxel_per_s": round(labels.size / 1e6 / max(seconds, 1e-9), 3),
        "class_fractions": fractions, "cleanup": cleaned, "validation": records[0]["validation"]})
    log.info("class fractions (bg, alumina, Pt): %s", fractions)
    log.info("throughput: %d slices in %d slab(s), %.2f Mvoxel/s of compute", labels.shape[0],
             len(records), labels.size / 1e6 / max(seconds, 1e-9))


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

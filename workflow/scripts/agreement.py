"""Rule agreement: the networks' agreement on the unannotated slices and the slices worth
annotating next."""

import logging

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.annotations import annotated_slices
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.evaluate.agreement import pairwise_agreement, slice_disagreement
from stemtomo.evaluate.figures import suggestions

log = logging.getLogger("stemtomo.evaluate")


def main(smk) -> None:
    annotations = read_tiltseries(smk.input.labels).data.astype(np.uint8)
    segs = {m: read_tiltseries(p).data.astype(np.uint8)
            for m, p in zip(smk.params.models, smk.input.segmentations, strict=True)}
    rows = slice_disagreement(np.stack(list(segs.values())), annotations)
    record = pairwise_agreement(segs, annotations)
    io.write_csv(smk.output.csv, rows, fields=["z", "pt_disputed_voxels",
                                               "alumina_disputed_voxels", "score", "rank"])
    io.write_json(smk.output.json, record)
    volume = read_tiltseries(smk.input.volume).data
    suggestions(smk.output.figure, volume, np.stack(list(segs.values())), rows,
                annotated_slices(annotations))
    best = [r["z"] for r in rows if r["rank"]][:5]
    log.info("mean pairwise Dice on %d unannotated slices: %s", record["unannotated_slices"],
             {k: round(v, 3) for k, v in record["mean_pairwise_dice"].items()})
    log.info("annotate next: slices %s", best)
    log.info("throughput: %d slices ranked for %d networks", len(rows), len(segs))


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

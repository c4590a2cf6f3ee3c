"""Rule annotations: the sample's annotations in stemtomo's classes on the volume's grid."""

import logging

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.annotations import Encoding, annotated_slices, read_annotations
from stemtomo.core.labels import class_statistics
from stemtomo.core.readers import read_shape, read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.learn.patches import simulate_annotation
from stemtomo.learn.settings import AnnotationNoise

log = logging.getLogger("stemtomo.patches")


def main(smk) -> None:
    key = f"samples.{smk.wildcards.sample}"
    if smk.input.get("labels"):  # a synthetic sample: its truth on a few slices
        truth = read_tiltseries(smk.input.labels)
        noise = AnnotationNoise.from_section(smk.params.annotation_noise, "patches.annotation_noise")
        labels = simulate_annotation(truth.data.astype(np.uint8), smk.params.annotate_slices,
                                     noise, truth.pixel_size_nm or 1.0, smk.params.seed)
        log.info("synthetic sample: %d annotated slices kept, as a person would annotate",
                 len(annotated_slices(labels)))
    else:
        encoding = Encoding.from_config(smk.params.label_values, f"{key}.label_values")
        labels = read_annotations(smk.params.source, read_shape(smk.input.volume), encoding,
                                  f"{key}.labels")
        log.info("%s: encoding %s", smk.params.source, encoding.describe())
    io.write_tiff(smk.output.labels, labels, None)
    stats = class_statistics(labels)
    log.info("annotated slices %s", annotated_slices(labels).tolist())
    log.info("throughput: %d annotated slices, labelled voxels per class (bg, alumina, Pt) %s",
             len(annotated_slices(labels)), stats["voxels"])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

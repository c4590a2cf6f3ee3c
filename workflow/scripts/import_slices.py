"""Rule import_slices: a 2D dataset's images and masks, paired, checked and stacked."""

import logging
import time

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.annotations import Encoding
from stemtomo.core.errors import InputError
from stemtomo.core.images import image_pixel_size
from stemtomo.core.labels import class_statistics
from stemtomo.core.runner import run_rule
from stemtomo.prep.figures import dataset_overview
from stemtomo.prep.slices import load_dataset

log = logging.getLogger("stemtomo.import")


def main(smk) -> None:
    t0 = time.perf_counter()
    key = f"samples.{smk.wildcards.sample}"
    data = load_dataset(smk.params.slices, Encoding.from_config(smk.params.label_values,
                                                                f"{key}.label_values"), f"{key}.slices")
    first = data.record["train"][0]["image"]
    px = smk.params.pixel_size_nm or image_pixel_size(first)
    if px is None:
        raise InputError(first, "no pixel size in the image", f"set `{key}.pixel_size_nm` (nm) in "
                         "the config: the evaluation reports distances and sizes in nm")
    data.record.update(pixel_size_nm=px, classes=class_statistics(data.labels))
    io.write_tiff(smk.output.images, data.images, px)
    io.write_tiff(smk.output.labels, data.labels, px)
    io.write_json(smk.output.json, data.record)
    dataset_overview(smk.output.figure, data.images, data.labels, data.record)
    log.info("%d training and %d validation images of %s px, %.3g nm/px; class fractions %s",
             len(data.record["train"]), len(data.record["val"]), data.images.shape[1:], px,
             data.record["classes"]["fractions"])
    log.info("throughput: %d image/mask pairs in %.1f s", len(data.images), time.perf_counter() - t0)


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

"""Rule export: ParaView files for one network's segmentation (surfaces, particles, volume, scene)
and the rendered 3D figure."""

import logging
import time
from pathlib import Path

import numpy as np

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.errors import InputError
from stemtomo.core.intensity import intensity_range
from stemtomo.core.readers import read_tiltseries
from stemtomo.core.runner import run_rule
from stemtomo.export import vtkio
from stemtomo.export.meshes import build_meshes, check_input, write_meshes
from stemtomo.export.scene import render, write_scene
from stemtomo.export.settings import ExportSettings

log = logging.getLogger("stemtomo.export")


def main(smk) -> None:
    settings = ExportSettings.from_section(smk.params.settings)
    out = Path(smk.output.json).parent
    seg = read_tiltseries(smk.input.labels)
    labels, px = seg.data, seg.pixel_size_nm
    check_input(labels, px, smk.input.labels)  # on the file's own dtype: no wrapped values
    volume = read_tiltseries(smk.input.volume).data.astype(np.float32)
    if volume.shape != labels.shape:
        raise InputError(smk.input.volume, f"volume {volume.shape} and labels {labels.shape} "
                                "differ in shape", "rerun the segment stage on this volume")
    t0 = time.perf_counter()
    meshes, record = build_meshes(labels.astype(np.uint8), px, settings.smoothing,
                                  settings.max_triangles)
    write_meshes(out, meshes)
    vtkio.write_vti(smk.output.volume, volume, px, "density")
    write_scene(Path(smk.output.scene), intensity_range(volume), settings.turntable_frames)
    mesh_seconds = time.perf_counter() - t0
    for stale in out.glob(Path(smk.output.render).stem + "_[0-9][0-9][0-9].png"):
        stale.unlink()  # turntable frames of an earlier run: this one writes its own
    renderer = render(Path(smk.output.scene), Path(smk.output.render), settings.render_size,
                      turntable=settings.turntable_frames)
    log.info("render: %s", renderer)
    io.write_json(smk.output.json, {"model": smk.wildcards.model, "voxel_nm": px,
                                    "smoothing_iterations": settings.smoothing,
                                    "max_triangles": settings.max_triangles, **record,
                                    "renderer": renderer, "mesh_seconds": round(mesh_seconds, 2)})
    log.info("throughput: %d + %d triangles, %d Pt particles, %.1f Mvoxel/s meshing",
             record["alumina"]["triangles"], record["pt"]["triangles"], record["particles"],
             labels.size / 1e6 / max(mesh_seconds, 1e-9))


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

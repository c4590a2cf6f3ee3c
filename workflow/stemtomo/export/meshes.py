"""Export for ParaView: per-class surfaces (.vtp, .stl) in nm from one shared surface net, Pt cells
with the evaluation's particle ids and sizes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.labels import ALUMINA, CLASS_NAMES, CLASSES, PT
from ..evaluate.particles import particles
from . import surfaces as sf
from . import vtkio

log = logging.getLogger("stemtomo.export")
SURFACES = (ALUMINA, PT)  # the classes that get a surface (background is the rest)


def check_input(labels: np.ndarray, voxel_nm: float | None, source: str) -> None:
    if voxel_nm is None or not np.isfinite(voxel_nm) or voxel_nm <= 0:
        raise InputError(source, "no voxel size in the file",
                         "write the volume with its voxel size (ImageJ TIFF unit nm), or set "
                         "samples.<s>.pixel_size_nm")
    bad = np.setdiff1d(np.unique(labels), CLASSES)
    if bad.size:
        raise InputError(source, f"label values {bad[:8].tolist()} outside 0 (background), "
                         "1 (γ-alumina), 2 (Pt)", "export a segmentation written by stemtomo")


def build_meshes(labels: np.ndarray, voxel_nm: float, smoothing: int,
                 budget: int) -> tuple[dict[str, sf.Mesh], dict]:
    """Both class surfaces from one shared net; Pt cells carry particle_id and diameter_nm (the
    evaluation's particle ids: same components, same numbering)."""
    net = sf.surface_net(labels)
    sf.smooth(net, smoothing)
    pt = particles(labels, voxel_nm)
    diameter = np.zeros(len(pt.table) + 1, np.float32)
    diameter[1:] = [row["diameter_nm"] for row in pt.table]
    meshes, record = {}, {"particles": len(pt.table)}
    for label in SURFACES:
        name = CLASS_NAMES[label]
        values = {"particle_id": pt.labels.astype(np.int32)} if label == PT else None
        mesh = sf.class_mesh(net, label, voxel_nm, values)
        if label == PT:
            mesh.cell_data["diameter_nm"] = diameter[mesh.cell_data["particle_id"]]
        before = len(mesh.triangles)
        mesh, step = sf.cluster_decimate(mesh, budget)
        if step:
            log.info("%s: %d triangles over the budget of %d: decimated to %d (%.1f %%) by merging "
                     "vertices on a %.2f nm grid", name, before, budget, len(mesh.triangles),
                     100 * len(mesh.triangles) / before, step)
        if not len(mesh.triangles):
            log.warning("%s: no voxels of this class: writing an empty mesh", name)
        meshes[name] = mesh
        record[name] = {"triangles": len(mesh.triangles), "triangles_before_decimation": before,
                        "decimation_grid_nm": round(step, 3), "area_nm2": round(mesh.area, 2),
                        "volume_nm3": round(mesh.volume, 2), "closed": mesh.closed,
                        "voxels": int((labels == label).sum())}
    return meshes, record


def write_meshes(out: Path, meshes: dict[str, sf.Mesh]) -> None:
    for name, mesh in meshes.items():
        vtkio.write_vtp(out / f"{name}.vtp", mesh.points, mesh.triangles, mesh.cell_data)
        vtkio.write_stl(out / f"{name}.stl", mesh.points, mesh.triangles)

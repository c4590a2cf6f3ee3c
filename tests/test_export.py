"""ParaView export: surfaces with known area/volume, shared interfaces, particle ids, files that
VTK reads, bad input, and the render through ParaView (pvbatch) and through the PyPI-vtk fallback."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import sphere
from stemtomo.core.errors import InputError
from stemtomo.evaluate.particles import particles
from stemtomo.export import meshes as export
from stemtomo.export import scene, vtkio
from stemtomo.export import surfaces as sf

ROOT = Path(__file__).resolve().parents[1]


def mesh_of(labels, label, voxel_nm=1.0, smoothing=15):
    net = sf.surface_net(labels)
    sf.smooth(net, smoothing)
    return sf.class_mesh(net, label, voxel_nm)


@pytest.mark.parametrize("voxel_nm", [1.0, 0.4])
def test_a_sphere_has_its_area_and_volume_in_nm(voxel_nm):
    r = 12
    m = mesh_of(sphere((40, 40, 40), (20, 20, 20), r).astype(np.uint8), 1, voxel_nm)
    assert m.closed
    assert m.area == pytest.approx(4 * np.pi * (r * voxel_nm) ** 2, rel=0.03)
    assert m.volume == pytest.approx(4 / 3 * np.pi * (r * voxel_nm) ** 3, rel=0.03)
    assert m.points.min(axis=0) == pytest.approx([8 * voxel_nm] * 3, abs=voxel_nm)  # placed in nm


def test_a_cube_has_its_area_and_volume():
    cube = np.zeros((30, 30, 30), np.uint8)
    cube[5:25, 5:25, 5:25] = 1
    m = mesh_of(cube, 1)
    assert m.closed and m.volume == pytest.approx(8000, rel=0.01)
    assert m.area == pytest.approx(2400, rel=0.05)  # edges and corners are slightly rounded


def test_an_object_at_the_volume_edge_is_still_closed():
    labels = np.ones((6, 6, 6), np.uint8)  # fills the whole volume: closed by the padding
    m = mesh_of(labels, 1, smoothing=0)
    assert m.closed and m.volume == pytest.approx(216, rel=0.1)


@pytest.mark.parametrize("smoothing", [True, False])
def test_touching_classes_share_one_interface(smoothing):
    labels = np.zeros((40, 60, 40), np.uint8)
    labels[sphere(labels.shape, (20, 22, 20), 10)] = 1
    labels[sphere(labels.shape, (20, 38, 20), 8)] = 2  # overlaps: Pt sits in a dent of the support
    net = sf.surface_net(labels)
    sf.smooth(net, 15 if smoothing else 0)
    a, b = sf.class_mesh(net, 1, 1.0), sf.class_mesh(net, 2, 1.0)
    both = labels.copy()
    both[both == 2] = 1
    union = mesh_of(both, 1, smoothing=15 if smoothing else 0)
    assert a.closed and b.closed
    # no gap and no overlap: the two volumes add up to the union's
    assert a.volume + b.volume == pytest.approx(union.volume, rel=0.005)
    # the interface triangles are the same in both meshes (same points, opposite orientation)
    key = {tuple(np.round(p, 6)) for p in a.points}
    shared = [tuple(np.round(p, 6)) in key for p in b.points]
    assert 20 < sum(shared) < len(b.points)
    # ... and so are its triangles: each interface quad is split alike in both meshes (ties of
    # the unsmoothed net included), with opposite normals

    def normals(m):
        p = m.points[m.triangles]
        return {frozenset(map(tuple, np.round(q, 6))): np.cross(q[1] - q[0], q[2] - q[0]) for q in p}

    na, nb = normals(a), normals(b)
    interface = int((((net.low == 1) & (net.high == 2)) | ((net.low == 2) & (net.high == 1))).sum())
    common = set(na) & set(nb)
    assert interface > 20 and len(common) == 2 * interface
    assert all(na[t] @ nb[t] < 0 for t in common)


def scene_labels():
    labels = np.zeros((36, 48, 48), np.uint8)
    labels[4:32, 4:44, 4:22] = 1
    labels[sphere(labels.shape, (18, 24, 25), 5)] = 2    # on the support
    labels[sphere(labels.shape, (10, 12, 36), 3)] = 2    # free
    labels[sphere(labels.shape, (27, 38, 36), 4)] = 2    # free
    return labels


def test_pt_particles_carry_the_evaluation_ids_and_diameters(tmp_path):
    labels = scene_labels()
    meshes, record = export.build_meshes(labels, 0.5, 10, 10**6)
    table = particles(labels, 0.5).table
    pt = meshes["pt"]
    assert record["particles"] == 3 and set(np.unique(pt.cell_data["particle_id"])) == {1, 2, 3}
    for row in table:
        d = pt.cell_data["diameter_nm"][pt.cell_data["particle_id"] == row["id"]]
        assert np.allclose(d, row["diameter_nm"])
    radii = {round(r["diameter_nm"] / 0.5 / 2) for r in table}
    assert radii == {3, 4, 5}
    export.write_meshes(tmp_path, meshes)
    arrays = vtkio.read_vtp(tmp_path / "pt.vtp")
    assert arrays["particle_id"].size == len(pt.triangles) and arrays["Points"].size == pt.points.size
    stl = (tmp_path / "pt.stl").read_bytes()
    assert len(stl) == 84 + 50 * len(pt.triangles)
    rec = np.frombuffer(stl[84:], dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    np.testing.assert_allclose(rec["v"], pt.points[pt.triangles], atol=1e-4)  # same winding
    np.testing.assert_allclose(np.linalg.norm(rec["n"], axis=1), 1.0, atol=1e-5)
    v = rec["v"].astype(np.float64)  # divergence theorem: outward normals enclose a positive volume
    stl_volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6
    assert stl_volume == pytest.approx(pt.volume, rel=1e-4) and stl_volume > 0


def test_vtk_reads_the_files_with_the_same_geometry(tmp_path):
    pytest.importorskip("vtkmodules")
    code = """
import sys
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader, vtkXMLImageDataReader
from vtkmodules.vtkFiltersCore import vtkMassProperties, vtkTriangleFilter
r = vtkXMLPolyDataReader(); r.SetFileName(sys.argv[1]); r.Update()
m = vtkMassProperties(); m.SetInputData(r.GetOutput()); m.Update()
i = vtkXMLImageDataReader(); i.SetFileName(sys.argv[2]); i.Update()
img = i.GetOutput()
print(r.GetOutput().GetNumberOfCells(), m.GetSurfaceArea(), m.GetVolume(), img.GetDimensions(),
      img.GetSpacing(), r.GetOutput().GetCellData().GetArray("diameter_nm") is not None, sep=";")
"""
    labels = scene_labels()
    meshes, _ = export.build_meshes(labels, 0.5, 10, 10**6)
    export.write_meshes(tmp_path, meshes)
    vtkio.write_vti(tmp_path / "v.vti", labels.astype(np.float32), 0.5, "density")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pt.vtp"), str(tmp_path / "v.vti")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cells, area, volume, dims, spacing, has_diameter = out.stdout.strip().split(";")
    assert int(cells) == len(meshes["pt"].triangles)
    assert float(area) == pytest.approx(meshes["pt"].area, rel=1e-4)
    assert float(volume) == pytest.approx(meshes["pt"].volume, rel=1e-3)
    assert (dims, spacing, has_diameter) == ("(48, 48, 36)", "(0.5, 0.5, 0.5)", "True")


def test_decimation_keeps_the_budget_and_says_so(caplog):
    labels = np.zeros((50, 50, 50), np.uint8)
    labels[sphere(labels.shape, (25, 25, 25), 20)] = 1
    with caplog.at_level(logging.INFO, logger="stemtomo.export"):
        meshes, record = export.build_meshes(labels, 1.0, 10, 3000)
    assert record["alumina"]["triangles"] <= 3000 < record["alumina"]["triangles_before_decimation"]
    assert "decimated to" in caplog.text
    assert meshes["alumina"].volume == pytest.approx(4 / 3 * np.pi * 20**3, rel=0.1)
    # Pt's cell data (particle id, diameter) follow the triangles through decimation
    meshes, record = export.build_meshes(scene_labels(), 0.5, 10, 400)
    pt = meshes["pt"]
    assert record["pt"]["triangles"] <= 400 < record["pt"]["triangles_before_decimation"]
    assert all(len(v) == len(pt.triangles) for v in pt.cell_data.values())
    assert set(np.unique(pt.cell_data["particle_id"])) == {1, 2, 3}


def test_bad_input_is_named_and_an_empty_class_gives_an_empty_valid_mesh(tmp_path, caplog):
    with pytest.raises(InputError, match="outside 0"):
        export.check_input(np.array([0, 1, 7]), 0.5, "labels.tif")
    with pytest.raises(InputError, match="no voxel size"):
        export.check_input(np.array([0, 1]), None, "labels.tif")
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2:8, 2:8, 2:8] = 1  # no Pt
    with caplog.at_level(logging.WARNING, logger="stemtomo.export"):
        meshes, record = export.build_meshes(labels, 1.0, 5, 1000)
    assert "pt: no voxels of this class" in caplog.text and record["pt"]["triangles"] == 0
    export.write_meshes(tmp_path, meshes)
    arrays = vtkio.read_vtp(tmp_path / "pt.vtp")
    assert arrays["Points"].size == 0 and (tmp_path / "pt.stl").stat().st_size == 84


def rendered(tmp_path, env, turntable: int = 0) -> tuple[np.ndarray, str]:
    import matplotlib.image as mpimg

    labels = scene_labels()
    meshes, _ = export.build_meshes(labels, 0.5, 10, 10**6)
    export.write_meshes(tmp_path, meshes)
    vtkio.write_vti(tmp_path / "volume.vti", labels.astype(np.float32), 0.5, "density")
    scene.write_scene(tmp_path / "scene.py", (0.0, 2.0), turntable)
    old = dict(os.environ)
    os.environ.update(env)
    try:
        renderer = scene.render(tmp_path / "scene.py", tmp_path / "render.png", (320, 240),
                                 timeout=300, turntable=turntable)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return mpimg.imread(tmp_path / "render.png")[..., :3], renderer


def assert_shows_the_object(img: np.ndarray) -> None:
    assert img.std() > 0.02  # not blank
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    gold = (r > 0.6) & (g > 0.4) & (b < 0.35) & (r - b > 0.35)
    assert gold.sum() > 30, "no Pt-coloured pixels"
    assert ((np.abs(img - 1.0).sum(axis=-1)) > 0.1).mean() > 0.05  # the object covers the view


@pytest.mark.skipif(shutil.which("pvbatch") is None,
                    reason="ParaView's pvbatch is not installed (`make test` installs Debian's as root)")
def test_paraview_loads_the_scene_and_renders_it(tmp_path):
    img, renderer = rendered(tmp_path, {}, turntable=2)
    assert renderer.startswith("paraview")
    assert_shows_the_object(img)
    frames = sorted(tmp_path.glob("render_*.png"))
    assert [f.name for f in frames] == ["render_000.png", "render_001.png"]


def test_the_vtk_fallback_renders_the_same_scene(tmp_path):
    pytest.importorskip("vtkmodules")
    img, renderer = rendered(tmp_path, {"STEMTOMO_PVBATCH": ""}, turntable=3)
    assert renderer.startswith("vtk")
    assert_shows_the_object(img)
    import matplotlib.image as mpimg

    frames = sorted(tmp_path.glob("render_*.png"))
    assert [f.name for f in frames] == ["render_000.png", "render_001.png", "render_002.png"]
    views = [mpimg.imread(f)[..., :3] for f in frames]
    assert views[0].shape == (120, 160, 3)  # half size, as ParaView's frames
    assert np.abs(views[0] - views[1]).mean() > 1e-3  # the camera turned


def test_a_missing_paraview_falls_back_to_vtk(tmp_path, monkeypatch):
    pytest.importorskip("vtkmodules")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no xvfb-run wrapper hiding the missing binary
    monkeypatch.setattr(shutil, "which", lambda name: None)
    img, renderer = rendered(tmp_path, {"STEMTOMO_PVBATCH": str(tmp_path / "no" / "pvbatch")})
    assert renderer.startswith("vtk")
    assert_shows_the_object(img)

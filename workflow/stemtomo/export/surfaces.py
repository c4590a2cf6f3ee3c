"""Label-map-aware surfaces: one shared net for all classes, so that neighbouring classes share one
interface instead of two overlapping skins.

Surface Nets (Gibson 1998, "Constrained elastic surface nets"; the multi-label form of VTK's
vtkSurfaceNets3D, Schroeder et al. 2022): one vertex per 2×2×2 cell of voxels whose labels differ,
placed at the mean of the midpoints of the cell's label-changing edges; one quad per pair of
face-adjacent voxels with different labels, through the four cells around that pair. The quad
between classes a and b belongs to both meshes (with opposite orientation). Smoothing moves the
shared vertices (Taubin λ|μ, each vertex kept in its cell), so interfaces stay shared. The volume is
padded with background, so every surface is closed. NumPy only: meshing needs no VTK.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# the 12 edges of a 2×2×2 cell as pairs of corner offsets (dz, dy, dx)
_CORNERS = [(z, y, x) for z in (0, 1) for y in (0, 1) for x in (0, 1)]
_EDGES = [(a, b) for i, a in enumerate(_CORNERS) for b in _CORNERS[i + 1:]
          if sum(abs(p - q) for p, q in zip(a, b, strict=True)) == 1]


@dataclass
class Net:
    """The shared surface net of a label volume, in voxel coordinates (z, y, x) of the input."""
    vertices: np.ndarray                  # (n, 3) float64, (z, y, x)
    quads: np.ndarray                     # (m, 4) vertex indices; normal points from `low` to `high`
    low: np.ndarray                       # (m,) label on the lower-coordinate side of each quad
    high: np.ndarray                      # (m,) label on the higher side
    low_voxel: np.ndarray                 # (m, 3) voxel (z, y, x) on the lower side
    high_voxel: np.ndarray                # (m, 3) voxel on the higher side
    cells: np.ndarray = field(repr=False)  # (n, 3) lower corner of each vertex's cell


def surface_net(labels: np.ndarray) -> Net:
    """The multi-label surface net of a (z, y, x) label volume (background 0 outside)."""
    lab = np.pad(np.asarray(labels), 1)  # background all round: closed surfaces
    Z, Y, X = lab.shape
    corner = [lab[z:Z - 1 + z, y:Y - 1 + y, x:X - 1 + x] for z, y, x in _CORNERS]
    first = corner[0]
    active = np.zeros(first.shape, bool)
    for c in corner[1:]:
        active |= c != first
    cells = np.argwhere(active)
    index = np.full(first.shape, -1, np.int64)
    index[tuple(cells.T)] = np.arange(len(cells))
    # vertex: mean of the midpoints of the label-changing edges of its cell
    total = np.zeros((len(cells), 3))
    count = np.zeros(len(cells))
    sel = tuple(cells.T)
    for a, b in _EDGES:
        ia, ib = _CORNERS.index(a), _CORNERS.index(b)
        diff = (corner[ia] != corner[ib])[sel]
        mid = (np.array(a) + np.array(b)) / 2.0
        total[diff] += mid
        count[diff] += 1
    vertices = cells + total / count[:, None]
    # quads: one per label-changing pair of face neighbours, through the 4 cells around their edge
    quads, low, high, lv, hv = [], [], [], [], []
    xyz = vertices[:, ::-1]  # orientation is judged in (x, y, z) space
    for axis in range(3):
        o1, o2 = [a for a in range(3) if a != axis]
        lo = [slice(1, n - 1) for n in lab.shape]
        hi = list(lo)
        lo[axis] = slice(0, lab.shape[axis] - 1)
        hi[axis] = slice(1, lab.shape[axis])
        a, b = lab[tuple(lo)], lab[tuple(hi)]
        pairs = np.argwhere(a != b)
        if not len(pairs):
            continue
        p = pairs.copy()
        p[:, o1] += 1
        p[:, o2] += 1  # voxel coordinates of the lower voxel in the padded volume
        ring = []
        for d1, d2 in ((-1, -1), (0, -1), (0, 0), (-1, 0)):  # around the edge, counter-clockwise
            c = p.copy()
            c[:, o1] += d1
            c[:, o2] += d2
            ring.append(index[tuple(c.T)])
        q = np.stack(ring, axis=1)
        # orient the ring so that its normal, in (x, y, z) space, points along +axis
        normal = np.cross(xyz[q[:, 2]] - xyz[q[:, 0]], xyz[q[:, 3]] - xyz[q[:, 1]])
        if normal[:, 2 - axis].sum() < 0:
            q = q[:, ::-1]
        quads.append(q)
        low.append(lab[tuple(p.T)])
        up = p.copy()
        up[:, axis] += 1
        high.append(lab[tuple(up.T)])
        lv.append(p - 1)
        hv.append(up - 1)
    if not quads:
        empty = np.zeros((0,), lab.dtype)
        return Net(np.zeros((0, 3)), np.zeros((0, 4), np.int64), empty, empty,
                   np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.int64))
    return Net(vertices - 1.0, np.concatenate(quads), np.concatenate(low), np.concatenate(high),
               np.concatenate(lv), np.concatenate(hv), cells - 1)


def smooth(net: Net, iterations: int = 15, lam: float = 0.5, mu: float = -0.53) -> None:
    """Taubin λ|μ smoothing (Taubin 1995: no shrinkage) of the shared vertices, each kept inside
    its cell (the Surface Nets constraint), in place."""
    if not len(net.quads) or iterations <= 0:
        return
    q = net.quads
    edges = np.concatenate([q[:, [0, 1]], q[:, [1, 2]], q[:, [2, 3]], q[:, [3, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    n = len(net.vertices)
    degree = np.bincount(edges.ravel(), minlength=n).astype(float)
    lo, hi = net.cells.astype(float), net.cells + 1.0
    v = net.vertices
    for _ in range(iterations):
        for factor in (lam, mu):
            acc = np.zeros_like(v)
            np.add.at(acc, edges[:, 0], v[edges[:, 1]])
            np.add.at(acc, edges[:, 1], v[edges[:, 0]])
            mean = acc / np.maximum(degree, 1)[:, None]
            v += factor * (mean - v) * (degree > 0)[:, None]
            np.clip(v, lo, hi, out=v)
    net.vertices = v


@dataclass
class Mesh:
    """A triangle mesh in physical units: points (n, 3) as (x, y, z) nm, triangles (m, 3)."""
    points: np.ndarray
    triangles: np.ndarray
    cell_data: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def area(self) -> float:
        a, b, c = (self.points[self.triangles[:, i]] for i in range(3))
        return float(0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())

    @property
    def volume(self) -> float:
        """Enclosed volume by the divergence theorem (exact for a closed, outward-oriented mesh)."""
        a, b, c = (self.points[self.triangles[:, i]] for i in range(3))
        return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)

    @property
    def closed(self) -> bool:
        """Every edge is used by an even number of triangles, with balanced orientation."""
        t = self.triangles
        directed = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
        key = np.sort(directed, axis=1)
        sign = np.where(directed[:, 0] < directed[:, 1], 1, -1)
        _, inverse = np.unique(key, axis=0, return_inverse=True)
        return bool(np.all(np.bincount(inverse.ravel(), weights=sign) == 0)) if len(t) else True


def class_mesh(net: Net, label: int, voxel_nm: float,
               cell_values: dict[str, np.ndarray] | None = None) -> Mesh:
    """The closed, outward-oriented surface of one class from the shared net, in nm (x, y, z).
    `cell_values` maps a name to a (z, y, x) volume sampled at the class's voxel of each quad."""
    on_low, on_high = net.low == label, net.high == label
    keep = on_low | on_high
    quads = np.where(on_high[:, None], net.quads[:, ::-1], net.quads)[keep]  # normal out of label
    inner = np.where(on_low[:, None], net.low_voxel, net.high_voxel)[keep]
    used, remap = np.unique(quads, return_inverse=True)
    quads = remap.reshape(-1, 4)
    points = net.vertices[used][:, ::-1] * voxel_nm  # (z, y, x) voxels → (x, y, z) nm
    # Split each quad along its shorter diagonal, chosen on the net's own vertex order: a flipped
    # quad's 0-2 diagonal is the original 1-3, so both classes split a shared quad alike (ties too).
    v = net.vertices[net.quads[keep]]
    d02 = np.linalg.norm(v[:, 0] - v[:, 2], axis=1)
    d13 = np.linalg.norm(v[:, 1] - v[:, 3], axis=1)
    short02 = ((d02 <= d13) != on_high[keep])[:, None]
    t1 = np.where(short02, quads[:, [0, 1, 2]], quads[:, [0, 1, 3]])
    t2 = np.where(short02, quads[:, [0, 2, 3]], quads[:, [1, 2, 3]])
    triangles = np.concatenate([t1, t2])
    data = {name: np.tile(values[tuple(inner.T)], 2) for name, values in (cell_values or {}).items()}
    return Mesh(points, triangles.astype(np.int64), data)


def cluster_decimate(mesh: Mesh, budget: int) -> tuple[Mesh, float]:
    """Vertex-clustering decimation (Rossignac & Borrel 1993) to at most `budget` triangles: merge
    vertices on a grid whose step doubles until the mesh fits. Returns the mesh and the step (nm;
    0 when nothing was done)."""
    if len(mesh.triangles) <= budget or not len(mesh.triangles):
        return mesh, 0.0
    edge = np.linalg.norm(mesh.points[mesh.triangles[:, 0]] - mesh.points[mesh.triangles[:, 1]], axis=1)
    step = float(np.median(edge)) * 2
    while True:
        keys = np.floor(mesh.points / step).astype(np.int64)
        _, cluster = np.unique(keys, axis=0, return_inverse=True)
        cluster = cluster.ravel()
        n = cluster.max() + 1
        points = np.zeros((n, 3))
        np.add.at(points, cluster, mesh.points)
        points /= np.bincount(cluster, minlength=n)[:, None]
        tri = cluster[mesh.triangles]
        ok = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
        if ok.sum() <= budget:
            data = {k: v[ok] for k, v in mesh.cell_data.items()}
            return Mesh(points, tri[ok], data), step
        step *= 1.5

"""The projector interface shared by alignment (projection matching) and reconstruction.

A projector maps a (nz, ny, nx) volume to (tilt, ny, nu) parallel-beam projections about the y axis
(conventions in stemtomo.geometry) and back (the exact adjoint). Backends:
- ``joseph-cpu``: Joseph's method as one SciPy sparse matrix per tilt series, applied to all y slices
  at once; always available. Further backends (ASTRA 2D on the CPU, ASTRA 3D on GPU tensors,
  TomoPy) implement the same two methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Projector(ABC):
    name = "abstract"

    def __init__(self, angles_deg: np.ndarray, volume_shape: tuple[int, int, int],
                 detector_width: int | None = None) -> None:
        self.angles = np.asarray(angles_deg, dtype=float)
        self.volume_shape = tuple(int(v) for v in volume_shape)
        self.detector_width = int(detector_width or volume_shape[2])

    @property
    def projection_shape(self) -> tuple[int, int, int]:
        return (len(self.angles), self.volume_shape[1], self.detector_width)

    @abstractmethod
    def forward(self, volume: np.ndarray) -> np.ndarray:
        """Line integrals (unit voxel length) of a (nz, ny, nx) volume → (tilt, ny, nu)."""

    @abstractmethod
    def back(self, projections: np.ndarray) -> np.ndarray:
        """Adjoint of :meth:`forward`: (tilt, ny, nu) → (nz, ny, nx)."""

    @abstractmethod
    def subset(self, tilts: np.ndarray) -> Projector:
        """The same geometry restricted to some tilts (for ordered-subset methods)."""


class JosephProjector(Projector):
    name = "joseph-cpu"

    def __init__(self, angles_deg, volume_shape, detector_width=None, matrix=None) -> None:
        import scipy.sparse as sp

        from .raytrace import joseph_matrix

        super().__init__(angles_deg, volume_shape, detector_width)
        nz, _, nx = self.volume_shape
        self._a = matrix if matrix is not None else sp.vstack(
            [joseph_matrix(nz, nx, self.detector_width, float(a)) for a in self.angles]).tocsr()
        self._at = self._a.T.tocsr()

    def subset(self, tilts: np.ndarray) -> JosephProjector:
        rows = (np.asarray(tilts)[:, None] * self.detector_width
                + np.arange(self.detector_width)[None, :]).ravel()
        return JosephProjector(self.angles[tilts], self.volume_shape, self.detector_width,
                               self._a[rows])

    def forward(self, volume: np.ndarray) -> np.ndarray:
        nz, ny, nx = self.volume_shape
        cols = np.ascontiguousarray(np.asarray(volume, np.float32).transpose(0, 2, 1)).reshape(nz * nx, ny)
        out = self._a @ cols
        return np.ascontiguousarray(out.reshape(len(self.angles), self.detector_width, ny)
                                    .transpose(0, 2, 1))

    def back(self, projections: np.ndarray) -> np.ndarray:
        nz, ny, nx = self.volume_shape
        rows = np.ascontiguousarray(np.asarray(projections, np.float32).transpose(0, 2, 1))
        out = self._at @ rows.reshape(-1, ny)
        return np.ascontiguousarray(out.reshape(nz, nx, ny).transpose(0, 2, 1))


class AstraCPUProjector(Projector):
    """ASTRA 2D CPU projector ('linear', i.e. Joseph-type) slice by slice; slices run in a thread
    pool (ASTRA releases the GIL). ASTRA's 2D geometry projects onto x·cos θ − z·sin θ with rows
    = z, so it gets −θ to follow stemtomo's convention."""

    name = "astra-cpu"

    def __init__(self, angles_deg, volume_shape, detector_width=None, threads: int = 1) -> None:
        import astra

        super().__init__(angles_deg, volume_shape, detector_width)
        nz, _, nx = self.volume_shape
        self.threads = max(1, threads)
        vol_geom = astra.create_vol_geom(nz, nx)
        proj_geom = astra.create_proj_geom("parallel", 1.0, self.detector_width,
                                           -np.deg2rad(self.angles))
        self._pid = astra.create_projector("linear", proj_geom, vol_geom)
        self._op = astra.OpTomo(self._pid)

    def __del__(self) -> None:
        try:
            import astra

            astra.projector.delete(self._pid)
        except Exception:  # interpreter shutdown: nothing left to free
            pass

    def _map(self, func, stack: np.ndarray, out_shape: tuple[int, ...], axis: int) -> np.ndarray:
        from concurrent.futures import ThreadPoolExecutor

        out = np.empty(out_shape, np.float32)
        slices = range(stack.shape[axis])

        def one(j: int) -> None:
            src = np.ascontiguousarray(np.take(stack, j, axis=axis), dtype=np.float32)
            res = func(src)
            if axis == 1:
                out[:, j, :] = res
            else:
                out[j] = res

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(one, slices))
        return out

    def forward(self, volume: np.ndarray) -> np.ndarray:
        n = len(self.angles)
        return self._map(lambda sl: self._op.FP(sl, out=None).reshape(n, self.detector_width),
                         np.asarray(volume), self.projection_shape, axis=1)

    def back(self, projections: np.ndarray) -> np.ndarray:
        nz, _, nx = self.volume_shape
        return self._map(lambda sino: self._op.BP(sino, out=None).reshape(nz, nx),
                         np.asarray(projections), self.volume_shape, axis=1)

    def subset(self, tilts: np.ndarray) -> AstraCPUProjector:
        return AstraCPUProjector(self.angles[tilts], self.volume_shape, self.detector_width,
                                 self.threads)


BACKENDS = {JosephProjector.name: JosephProjector, AstraCPUProjector.name: AstraCPUProjector}


def make_projector(backend: str, angles_deg: np.ndarray, volume_shape: tuple[int, int, int],
                   detector_width: int | None = None, threads: int = 1) -> Projector:
    """A projector by name. On the CPU 'auto' is joseph-cpu: it gives the same numbers as ASTRA's
    2D 'linear' projector (to 1e-6) about ten times faster, all slices in one sparse product."""
    if backend == "auto":
        backend = JosephProjector.name
    if backend not in BACKENDS:
        raise ValueError(f"unknown projector backend {backend!r}; available: {sorted(BACKENDS)}")
    if backend == AstraCPUProjector.name:
        return AstraCPUProjector(angles_deg, volume_shape, detector_width, threads)
    return BACKENDS[backend](angles_deg, volume_shape, detector_width)

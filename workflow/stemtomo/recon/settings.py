"""The reconstruct stage's settings (schema section `reconstruct`), typed, and what each
algorithm needs (one table instead of string tests in several places)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import Section


@dataclass(frozen=True)
class Algorithm:
    name: str
    em: bool            # multiplicative EM update: non-negative data (clipped), positive start
    iterative: bool     # runs `iterations` passes (FBP is one)
    subsets: bool       # ordered subsets of interleaved tilts
    masked_inside: bool  # the loop itself applies the mask (else the result is masked)
    tomopy: str         # TomoPy's own algorithm
    tomopy_gpu: str | None  # ASTRA's CUDA method through tomopy.astra (None: TomoPy's CPU one)


ALGORITHMS = {a.name: a for a in (
    Algorithm("mlem", em=True, iterative=True, subsets=False, masked_inside=True,
              tomopy="mlem", tomopy_gpu="EM_CUDA"),
    Algorithm("osem", em=True, iterative=True, subsets=True, masked_inside=True,
              tomopy="osem", tomopy_gpu=None),
    Algorithm("sirt", em=False, iterative=True, subsets=False, masked_inside=False,
              tomopy="sirt", tomopy_gpu="SIRT_CUDA"),
    Algorithm("fbp", em=False, iterative=False, subsets=False, masked_inside=False,
              tomopy="gridrec", tomopy_gpu=None),  # gridrec, matched to stemtomo's FBP
)}
TOMOPY_BACKENDS = ("tomopy", "tomopy-gpu")


@dataclass(frozen=True)
class ReconstructSettings(Section):
    SCHEMA = "reconstruct"

    algorithm: str
    iterations: int
    subsets: int
    backend: str
    height: int | None
    mask: str                  # none | cylinder
    slabs: int
    max_memory_fraction: float
    fbp_window: str
    mrc: bool

    @property
    def method(self) -> Algorithm:
        return ALGORITHMS[self.algorithm]

    @property
    def tomopy(self) -> bool:
        return self.backend in TOMOPY_BACKENDS

    @property
    def effective_iterations(self) -> int:
        return self.iterations if self.method.iterative else 1

    @property
    def effective_subsets(self) -> int:
        return self.subsets if self.method.subsets else 1

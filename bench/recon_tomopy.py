"""Benchmark: the TomoPy backend beside stemtomo's CPU projectors, on the demo phantom.

128³ (the demo's phantom, 0.4 nm), 61 tilts (−60…60°, 2°), the series aligned with the true
geometry; MLEM 50 iterations with 2 threads on tomopy, joseph-cpu and astra-cpu (each the minimum
of `--repeats` runs), correlation with the phantom's density and with joseph-cpu's volume, and the
subpixel shift against it; then TomoPy's osem / sirt / fbp against the same algorithm on joseph-cpu.
Prints one JSON object. Needs TomoPy (conda-forge, or the CPU wheel in ../shared/tomopy).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from common import section, settings  # bench/common.py, beside this script (puts workflow/ first)

from stemtomo.align.registration import register
from stemtomo.core import geometry
from stemtomo.core.config import validate_config
from stemtomo.recon.reconstruct import reconstruct
from stemtomo.recon.settings import ReconstructSettings
from stemtomo.simulate.acquisition import simulate
from stemtomo.simulate.settings import SimulateSettings

THREADS = 2


def demo_series() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(aligned series, angles, phantom density) of the demo phantom seen at 61 tilts."""
    sample = {"simulate": {"size": 128, "pixel_size_nm": 0.4,
                           "tilt": {"start": -60, "stop": 60, "step": 2}}}
    params = SimulateSettings.from_section(
        validate_config({"samples": {"demo": sample}})["samples"]["demo"]["simulate"])
    sim = simulate(params)
    t, dark = sim.truth, params.haadf.dark_level
    aligned = np.stack([geometry.aligned_from_raw(im - dark, t["axis_angle_deg"],
                                                  t["axis_offset_px"], s, order=3)
                        for im, s in zip(sim.tiltseries, t["shifts_yx_px"], strict=True)])
    return aligned.astype(np.float32), sim.angles, sim.density


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), 4)


def run(series, angles, repeats: int, **overrides) -> tuple[np.ndarray, dict]:
    """The volume and the fastest of `repeats` runs (seconds)."""
    s = settings(ReconstructSettings, **overrides)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        volume, _ = reconstruct(series, angles, s, threads=THREADS)
        times.append(time.perf_counter() - t0)
    return volume, {"seconds_min": round(min(times), 2), "seconds_all": [round(x, 2) for x in times]}


def compare(volume, reference, density) -> dict:
    shift = register(reference, volume, upsample=100).shift
    return {"r_phantom": corr(volume, density), "r_joseph_cpu": corr(volume, reference),
            "shift_vs_joseph_px": [round(float(v), 3) for v in shift],
            "finite": bool(np.isfinite(volume).all())}


def mlem_side_by_side(series, angles, density, repeats: int) -> dict:
    out, reference = {}, None
    for backend in ("joseph-cpu", "astra-cpu", "tomopy"):
        volume, timing = run(series, angles, repeats, backend=backend, iterations=50)
        reference = volume if reference is None else reference
        out[backend] = {**timing, **compare(volume, reference, density)}
    return out


def algorithms(series, angles, density) -> dict:
    out = {}
    for algorithm, extra in (("osem", {"iterations": 10, "subsets": 8}),
                             ("sirt", {"iterations": 50}), ("fbp", {})):
        ref, tj = run(series, angles, 1, backend="joseph-cpu", algorithm=algorithm, **extra)
        vol, tt = run(series, angles, 1, backend="tomopy", algorithm=algorithm, **extra)
        out[algorithm] = {**extra, "tomopy_s": tt["seconds_min"], "joseph_cpu_s": tj["seconds_min"],
                          **compare(vol, ref, density),
                          "scale_vs_joseph": round(float((vol * ref).sum() / (ref * ref).sum()), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import tomopy

    series, angles, density = demo_series()
    out: dict = {"benchmark": "recon_tomopy", "cpus": os.cpu_count(), "threads": THREADS,
                 "tomopy": tomopy.__version__, "volume_zyx": list(density.shape),
                 "tilts": len(angles), "repeats": args.repeats}
    section(out, "mlem_50", mlem_side_by_side, series, angles, density, args.repeats)
    section(out, "tomopy_vs_joseph_cpu", algorithms, series, angles, density)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

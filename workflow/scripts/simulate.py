"""Rule simulate: a synthetic catalyst, its misaligned HAADF tilt series and the ground truth."""

import logging

import _libpath  # noqa: F401  (stemtomo from this checkout)
from stemtomo.core import io
from stemtomo.core.runner import run_rule
from stemtomo.simulate.acquisition import simulate
from stemtomo.simulate.figures import simulation_overview
from stemtomo.simulate.settings import SimulateSettings

log = logging.getLogger("stemtomo.simulate")


def main(smk) -> None:
    params = SimulateSettings.from_section(smk.params.settings, f"samples.{smk.wildcards.sample}.simulate")
    sim = simulate(params, progress=True)
    out, px = smk.output, params.pixel_size_nm
    io.write_tiff(out.tiltseries, sim.tiltseries, px)
    io.write_angles(out.angles, sim.angles)
    io.write_tiff(out.labels, sim.labels, px)
    io.write_tiff(out.phantom, sim.density, px)
    io.write_json(out.truth, sim.truth)
    simulation_overview(out.figure, sim.tiltseries, sim.angles, sim.labels, sim.density, sim.truth)
    t = sim.truth
    log.info("classes %s; %d Pt particles; %d crystallites",
             {k: f"{100 * v:.2f} %" for k, v in t["class_fractions"].items()},
             len(t["pt_particles"]), t["n_crystallites"])
    log.info("throughput: %d tilts of %d² px (projected at %d²) in %.1f s, %.1f tilts/s; "
             "phantom %.1f s", len(sim.angles), params.size, params.size * params.oversample,
             t["timings_s"]["projection"], t["timings_s"]["tilts_per_s"], t["timings_s"]["phantom"])


run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)

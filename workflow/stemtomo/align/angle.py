"""The tilt-axis angle: candidate lines from the common line, decided by the data (candidates),
then the fine angle from the common line where it decided alone, or else, where the object stays
in view, from centres of mass (com), which do not depend on how much structure the object has
across the axis."""

from __future__ import annotations

import logging

import numpy as np

from .axis import coarse_costs, local_minima, refine_angle
from .candidates import DECISIVE, SAME_LINE_DEG, choose, propose, refine_and_merge, score
from .com import com_axis
from .settings import AlignSettings
from .working import views

log = logging.getLogger("stemtomo.align")
MAX_COM_CORRECTION = 3.0  # deg: a larger centre-of-mass correction means it is not to be trusted
MAX_COM_SE = 0.5          # deg


def search_axis(work: np.ndarray, angles: np.ndarray, usable: np.ndarray, s: AlignSettings,
                binning: int, radius: float, precentred: bool) -> tuple[float, dict]:
    """The common-line angle of the candidate line that explains the data best, and the record
    of the search (coarse grid, every candidate with its scores, the decision)."""
    circular = s.axis_angle_search >= 90
    grid, costs = coarse_costs(work, usable, s.search_centre, s.axis_angle_search, radius)
    minima = local_minima(costs, circular, separation=int(SAME_LINE_DEG // 2))
    candidates = propose(grid, costs, minima, s.axis_angle_guess, circular)
    # The common line decided alone: the object has structure across the axis.
    decisive = candidates[0].depth <= DECISIVE and all(c.source != "common line" for c in candidates[1:])
    candidates = refine_and_merge(work, usable, candidates, radius)
    if len(candidates) > 1:
        score(work, angles, usable, candidates, s, binning, radius, precentred)
    best, decision = choose(candidates)
    phi, evaluations = refine_angle(work, usable, candidates[best].refined_deg, radius, 1.5)
    log.info("tilt-axis line: %d candidate(s), chosen %.2f° (%s confidence); common line %.3f°",
             len(candidates), candidates[best].refined_deg, decision["confidence"], phi)
    return phi, {"grid_deg": grid.tolist(), "grid_cost": costs.tolist(), **decision,
                 "common_line_decisive": decisive, "common_line_deg": phi,
                 "evaluations": evaluations + len(grid)}


def centre_of_mass_angle(work: np.ndarray, angles: np.ndarray, keep: np.ndarray, phi: float,
                         translations: np.ndarray, radius: float,
                         rounds: int = 2) -> tuple[float | None, dict]:
    """The angle at which the rows' axis crossings line up (com.com_axis), iterated from φ with
    the translations held; None (with the reason) where too few rows keep the object in view or
    the estimate is too uncertain to use."""
    idx = np.flatnonzero(keep)
    current, steps = phi, []
    for _ in range(rounds):
        est = com_axis(views(work, idx, current, translations), angles[idx], radius)
        if est is None:
            return None, {"used": False, "reason": "too few rows keep the object in view",
                          "steps": steps}
        current += est["correction_deg"]
        steps.append({k: round(v, 4) for k, v in est.items()})
    record = {"angle_deg": round(current, 4), "se_deg": steps[-1]["se_deg"],
              "rows": steps[-1]["rows"], "steps": steps}
    if abs(current - phi) > MAX_COM_CORRECTION or steps[-1]["se_deg"] > MAX_COM_SE:
        return None, {**record, "used": False,
                      "reason": f"correction {current - phi:+.2f}° or standard error "
                                f"{steps[-1]['se_deg']:.2f}° too large to trust"}
    return current, {**record, "used": True}

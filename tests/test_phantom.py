"""The catalyst phantom: porous aggregate of crystallites with Pt on its surface."""

import numpy as np
import pytest
from scipy import ndimage

from conftest import simulate_params
from stemtomo.simulate import phantom


@pytest.fixture(scope="module")
def fine():
    p = simulate_params()
    n, voxel = p.size * p.oversample, p.pixel_size_nm / p.oversample
    return phantom.build_catalyst(n, voxel, p.support, p.pt, np.random.default_rng(3)), p


def test_pt_fraction_and_sizes_follow_the_config(fine):
    cat, p = fine
    frac = np.mean(cat.material == phantom.PT)
    assert 0.002 <= frac <= 0.005, frac  # real catalysts: 0.2-0.5 % of voxels
    assert frac >= p.pt.volume_fraction * 0.95
    d = np.array([q["diameter_nm"] for q in cat.particles])
    assert d.min() >= p.pt.diameter_nm.min and d.max() <= p.pt.diameter_nm.max
    assert len(d) >= 10
    # log-normal about the configured median with the configured spread (clipping narrows it)
    assert np.median(d) == pytest.approx(p.pt.diameter_nm.median, rel=0.15)
    assert 0.5 * p.pt.diameter_nm.sigma < np.std(np.log(d)) < 1.5 * p.pt.diameter_nm.sigma


def test_every_pt_particle_sits_on_the_support(fine):
    cat, _ = fine
    pt_lab, n_pt = ndimage.label(cat.material == phantom.PT)
    assert n_pt == len(cat.particles)  # particles never merge (min gap)
    touching = ndimage.binary_dilation(cat.material == phantom.ALUMINA)
    touched = np.unique(pt_lab[touching & (pt_lab > 0)])
    assert len(touched) == n_pt
    # ... on it, not buried in it: about half of a particle's voxels face the pores
    exposed = ndimage.mean(ndimage.binary_dilation(cat.material == phantom.BACKGROUND), pt_lab,
                           np.arange(1, n_pt + 1))
    assert np.median(exposed) > 0.35


def test_support_is_one_porous_aggregate_of_platelets_and_rods(fine):
    cat, _ = fine
    solid = cat.material == phantom.ALUMINA
    _, n_components = ndimage.label(solid | (cat.material == phantom.PT))
    assert n_components == 1
    kinds = {c.kind for c in cat.crystallites}
    assert kinds == {"platelet", "rod"}
    # Enclosed pores: solid with its holes filled is clearly larger than the solid.
    filled = ndimage.binary_fill_holes(solid)
    assert filled.sum() > solid.sum() * 1.01
    # Not a blob: the aggregate fills well under half of its bounding box.
    zs, ys, xs = np.nonzero(solid)
    box = np.ptp(zs) * np.ptp(ys) * np.ptp(xs)
    assert solid.sum() < 0.5 * box
    # Flatter along the beam (z) than across.
    assert np.ptp(zs) < 0.85 * min(np.ptp(ys), np.ptp(xs))


def test_surface_is_rough():
    p = simulate_params()
    n, voxel = 96, p.pixel_size_nm / p.oversample
    support = p.support.replace(porosity=0.0)

    def surface_area(roughness):
        s = support.replace(roughness=roughness)
        cat = phantom.build_catalyst(n, voxel, s, p.pt.replace(volume_fraction=1e-6),
                                     np.random.default_rng(5))
        solid = cat.material > 0
        return (solid & ~ndimage.binary_erosion(solid)).sum() / solid.sum()

    assert surface_area(0.15) > 1.1 * surface_area(0.0)


def test_same_seed_same_phantom_other_seed_other():
    p = simulate_params()
    a, b, c = (phantom.build_catalyst(64, 0.4, p.support, p.pt, np.random.default_rng(s))
               for s in (1, 1, 2))
    assert np.array_equal(a.material, b.material)
    assert not np.array_equal(a.material, c.material)


def test_downsample_labels_majority_with_rare_class_tie_break():
    m = np.zeros((2, 2, 4), dtype=np.uint8)
    m[:, :, 0:2] = [[[1, 1], [1, 0]], [[0, 0], [0, 0]]]          # 3 alumina of 8 → background
    m[:, :, 2:4] = [[[2, 2], [2, 2]], [[1, 1], [1, 1]]]          # 4 Pt vs 4 alumina → Pt
    out = phantom.downsample_labels(m, 2)
    assert out.tolist() == [[[0, 2]]]

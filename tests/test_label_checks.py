"""The label-value check shared by the pre-job check (prep.inputs) and the patches stage: values
that are no class, nothing labelled, and labels without any Pt each get their own message."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import stage
from stemtomo.core.annotations import NAPARI, values_problem
from stemtomo.core.errors import InputError
from stemtomo.core.labels import IGNORE, value_counts
from stemtomo.learn.patches import extract
from stemtomo.learn.settings import PatchSettings


def test_value_counts_of_integer_and_float_labels():
    labels = np.array([[0, 1, 1], [2, 255, 255]], np.uint8)
    assert value_counts(labels) == {0: 1, 1: 2, 2: 1, 255: 2}
    assert value_counts(labels.astype(np.float32)) == {0: 1, 1: 2, 2: 1, 255: 2}
    assert value_counts(np.array([0.5, 1.0])) == {0.5: 1, 1: 1}


def test_each_problem_has_its_own_message():
    assert values_problem({0: 5, 1: 3, 2: 1, IGNORE: 9}) is None
    problem, fix = values_problem({0: 5, 0.5: 2, 7: 1})
    assert problem == "label values [0.5, 7] are not classes (values found: 0: 5 voxels, 0.5: 2 voxels, " \
                      "7: 1 voxels)"
    assert fix.startswith("use 0 background/pores, 1 γ-alumina, 2 Pt and 255 for unlabelled voxels")
    assert values_problem({IGNORE: 10})[0] == "no labelled voxels: every voxel is 255 (unlabelled)"
    assert values_problem({0: 5, 1: 3, IGNORE: 9})[0] == \
        "the labels hold no Pt (2) at all (values found: 0: 5 voxels, 1: 3 voxels, 255: 9 voxels)"
    assert values_problem({0: 5, 1: 3}, need_pt=False) is None
    # another encoding (napari's): its own values are fine, others named with the encoding
    assert values_problem({0: 9, 1: 5, 2: 3, 3: 1}, NAPARI) is None
    problem, fix = values_problem({0: 9, 4: 1}, NAPARI)
    assert problem.startswith("label values [4] are not in the label encoding (0 = unlabelled, "
                              "1 = background, 2 = alumina, 3 = pt)")
    assert values_problem({0: 9, 1: 5}, NAPARI)[1].endswith("maps your Pt value to pt)")


def test_patches_blame_missing_pt_on_the_file_not_on_the_training_slices():
    rng = np.random.default_rng(0)
    volume = rng.random((24, 32, 32)).astype(np.float32)
    labels = np.full(volume.shape, IGNORE, np.uint8)
    labels[::3] = rng.integers(0, 2, (8, 32, 32))  # background and alumina only
    with pytest.raises(InputError) as e:
        extract(volume, labels, stage(PatchSettings, patch_size=16), "data/labels.tif")
    assert e.value.source == "data/labels.tif"
    assert e.value.problem.startswith("the labels hold no Pt (2) at all (values found: 0: ")
    assert "training slices" not in str(e.value)

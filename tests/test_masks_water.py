"""Single-date water test and stack water mask (maja-l2a.md §1.7) on hand-made pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpumaja.masks.water import water_mask, water_mask_single_date
from gpumaja.model.params import L2Params

P = L2Params()  # NDVI < 0.01, red < 0.05, slope <= 0.15 rad


def _row(*vals, dtype=np.float32):
    return np.array([vals], dtype)


def test_hand_pixels():
    red = _row(0.03, 0.03, 0.06, 0.03, 0.03, 0.03, 0.03, 0.03)
    nir = _row(0.02, 0.035, 0.04, 0.02, 0.02, 0.02, 0.02, 0.02)
    # 0: NDVI -0.2, red 0.03 -> water
    # 1: NDVI 0.005/0.065 = 0.077 > 0.01 -> tested, not water
    # 2: red 0.06 > 0.05 -> tested, not water
    # 3: cloud, 4: edge, 5: topographic shadow -> not tested
    # 6: slope 8° = 0.1396 rad <= 0.15 -> water; 7: slope 9° = 0.157 rad > 0.15 -> not tested
    cloud = _row(0, 0, 0, 1, 0, 0, 0, 0, dtype=bool)
    edge = _row(0, 0, 0, 0, 1, 0, 0, 0, dtype=bool)
    shadow = _row(0, 0, 0, 0, 0, 1, 0, 0, dtype=bool)
    slope = _row(0, 0, 0, 0, 0, 0, 8.0, 9.0)
    assert math.radians(8.0) < 0.15 < math.radians(9.0)
    possible, tested = water_mask_single_date(red, nir, cloud, edge, shadow, slope, P)
    assert tested[0].tolist() == [True, True, True, False, False, False, True, False]
    assert possible[0].tolist() == [True, False, False, False, False, False, True, False]
    # INIT mode, one date: water = possible water (1 of 1 tested >= 50 %).
    assert (water_mask(possible, tested) == possible).all()


def test_zero_reflectance_is_not_water():
    z = _row(0.0)
    f = np.zeros((1, 1), bool)
    possible, tested = water_mask_single_date(z, z, f, f, f, z, P)
    assert tested.all() and not possible.any()


def test_stack_fraction():
    possible = np.array([[0, 1, 2, 3, 0]])
    tested = np.array([[4, 4, 4, 4, 0]])
    # >= 50 % of tested dates: 2/4 yes, 1/4 no; never tested -> not water.
    assert water_mask(possible, tested)[0].tolist() == [False, False, True, True, False]
    assert water_mask(possible, tested, 75.0)[0].tolist() == [False, False, False, True, False]
    with pytest.raises(ValueError, match="min_percent"):
        water_mask(possible, tested, 150.0)


@pytest.mark.gpu
def test_gpu_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(5)
    shape = (40, 50)
    red, nir = (rng.random(shape).astype(np.float32) * 0.1 for _ in range(2))
    cloud, edge, shadow = (rng.random(shape) < 0.1 for _ in range(3))
    slope = rng.random(shape).astype(np.float32) * 15
    want = water_mask_single_date(red, nir, cloud, edge, shadow, slope, P)
    got = water_mask_single_date(*(cp.asarray(x) for x in (red, nir, cloud, edge, shadow, slope)), P)
    for g, w in zip(got, want):
        assert isinstance(g, cp.ndarray)
        np.testing.assert_array_equal(g.get(), w)

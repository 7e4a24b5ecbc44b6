"""Snow mask, slope factor, closing and cloud correction (maja-l2a.md §1.6) on hand-made pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from gpumaja.masks.snow import cos_incidence, slope_factor, snow_mask, snow_mask_correction
from gpumaja.model.params import L2Params

P = L2Params()  # NDSI 0.4, red > 0.12, SWIR1 < 0.16, slope_min_cos_i 0.2, se_snow_radius 1
P0 = P.replace(se_snow_radius=0)  # no closing: pixel tests


def _row(*vals):
    return np.array([vals], np.float32)


def test_cos_incidence():
    # Flat: cos i = cos θs. Slope 30° facing the sun: cos(θs - 30°); facing away: cos(θs + 30°);
    # facing 90° from the sun: cos θs cos 30°.
    slope = np.array([[0.0, 30.0, 30.0, 30.0]])
    aspect = np.array([[0.0, 150.0, 330.0, 240.0]])
    got = cos_incidence(slope, aspect, 50.0, 150.0)
    want = [math.cos(math.radians(50)), math.cos(math.radians(20)), math.cos(math.radians(80)),
            math.cos(math.radians(50)) * math.cos(math.radians(30))]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[0], want, rtol=1e-6)


def test_slope_factor_clamps_cos_i():
    k = slope_factor(0.5, np.array([[1.0, 0.5, 0.1, -0.3]], np.float32), P)
    np.testing.assert_allclose(k[0], [0.5, 1.0, 2.5, 2.5], rtol=1e-6)


def test_hand_pixels_flat():
    # flat: cos i = cos θs -> factor 1
    green = _row(0.50, 0.30, 0.50, 0.60, 0.50, 0.50)
    red = _row(0.45, 0.30, 0.10, 0.50, 0.45, 0.45)
    swir = _row(0.10, 0.15, 0.05, 0.17, 0.10, 0.10)
    # 0: NDSI 0.4/0.6 = 0.667, red 0.45, swir 0.10 -> snow
    # 1: NDSI 0.15/0.45 = 0.333 -> no
    # 2: red 0.10 < 0.12 -> no
    # 3: swir 0.17 > 0.16 -> no
    # 4: snow but edge; 5: snow but water
    edge = np.array([[False, False, False, False, True, False]])
    water = np.array([[False, False, False, False, False, True]])
    cs = math.cos(math.radians(40))
    cos_i = np.full(green.shape, cs, np.float32)
    got = snow_mask(green, red, swir, cs, cos_i, edge, water, P0)
    assert got[0].tolist() == [True, False, False, False, False, False]
    # Without a water mask (INIT mode) pixel 5 is snow.
    got = snow_mask(green, red, swir, cs, cos_i, edge, None, P0)
    assert got[0].tolist() == [True, False, False, False, False, True]


def test_slope_correction_changes_the_decision():
    green = _row(0.50, 0.60)
    red = _row(0.45, 0.50)
    swir = _row(0.10, 0.20)
    cs = 0.5
    # Pixel 0 facing away (cos i = 0.1 -> clamped 0.2): factor 2.5, SWIR 0.25 > 0.16 -> no snow.
    # Pixel 1 facing the sun (cos i = 1): factor 0.5, SWIR 0.10, red 0.25, NDSI 0.4/0.8 = 0.5 -> snow
    # (flat it would not be: SWIR 0.20 > 0.16).
    cos_i = _row(0.1, 1.0)
    none = np.zeros(green.shape, bool)
    assert snow_mask(green, red, swir, cs, cos_i, none, None, P0)[0].tolist() == [False, True]
    assert snow_mask(green, red, swir, cs, _row(0.5, 0.5), none, None, P0)[0].tolist() == [True, False]


def test_zero_denominator_is_not_snow():
    z = _row(0.0)
    assert not snow_mask(z, z, z, 1.0, _row(1.0), np.zeros((1, 1), bool), None, P0).any()


def test_closing_fills_a_gap():
    snow_px = (0.5, 0.45, 0.10)
    bare = (0.1, 0.1, 0.1)  # NDSI 0
    pattern = np.array([[1, 1, 0, 1, 1]], bool)
    g, r, s = (np.where(pattern, a, b).astype(np.float32) for a, b in zip(snow_px, bare))
    g, r, s = (np.repeat(x, 3, axis=0) for x in (g, r, s))
    none = np.zeros(g.shape, bool)
    ones = np.ones(g.shape, np.float32)
    assert snow_mask(g, r, s, 1.0, ones, none, None, P0)[:, 2].tolist() == [False] * 3
    assert snow_mask(g, r, s, 1.0, ones, none, None, P).all()  # radius 1 closes the 1-px gap
    # Edge pixels stay out even when the closing would bridge them.
    edge = none.copy()
    edge[:, 2] = True
    got = snow_mask(g, r, s, 1.0, ones, edge, None, P)
    assert not got[:, 2].any() and got[:, [0, 1, 3, 4]].all()


def test_correction_label_surrounded_by_cloud_moves_to_cloud():
    snow = np.zeros((6, 8), bool)
    cloud = np.zeros((6, 8), bool)
    edge = np.zeros((6, 8), bool)
    snow[2:4, 1:3] = True  # label A: ring rows 1..4, cols 0..3, all cloud
    cloud[1:5, 0:4] = True
    cloud[2:4, 1:3] = False
    snow[2:4, 5:7] = True  # label B: ring all cloud except one clear pixel
    cloud[1:5, 4:8] = True
    cloud[2:4, 5:7] = False
    cloud[4, 7] = False  # diagonal neighbour of (3, 6): 8-connectivity sees it
    s2, extra = snow_mask_correction(snow, cloud, edge)
    want_extra = np.zeros_like(snow)
    want_extra[2:4, 1:3] = True
    assert (extra == want_extra).all()
    want_snow = snow.copy()
    want_snow[2:4, 1:3] = False
    assert (s2 == want_snow).all()


def test_correction_ring_of_cloud_and_edge_and_image_border():
    snow = np.zeros((4, 4), bool)
    snow[0:2, 0:2] = True  # touches the image corner: outside counts as edge
    cloud = np.zeros((4, 4), bool)
    edge = np.zeros((4, 4), bool)
    cloud[0:3, 2] = True
    edge[2, 0:2] = True
    s2, extra = snow_mask_correction(snow, cloud, edge)
    assert (extra == snow).all() and not s2.any()
    edge[2, 0] = False  # one clear ring pixel -> the label stays snow
    s2, extra = snow_mask_correction(snow, cloud, edge)
    assert (s2 == snow).all() and not extra.any()


def test_correction_whole_image_snow_stays_snow():
    snow = np.ones((3, 3), bool)
    s2, extra = snow_mask_correction(snow, np.zeros_like(snow), np.zeros_like(snow))
    assert s2.all() and not extra.any()
    s2, extra = snow_mask_correction(np.zeros((3, 3), bool), np.ones((3, 3), bool), np.zeros((3, 3), bool))
    assert not s2.any() and not extra.any()


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(bool, (8, 9)), hnp.arrays(bool, (8, 9)), hnp.arrays(bool, (8, 9)))
def test_correction_partitions_the_snow(snow, cloud, edge):
    s2, extra = snow_mask_correction(snow, cloud, edge)
    assert not (s2 & extra).any()
    assert ((s2 | extra) == snow).all()
    # Without any cloud or edge every label that has a ring touches clear ground: nothing moves.
    none = np.zeros_like(snow)
    assert not snow_mask_correction(snow, none, none)[1].any()


@pytest.mark.gpu
def test_gpu_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(2)
    shape = (80, 90)
    g, r, s = (rng.random(shape).astype(np.float32) * 0.6 for _ in range(3))
    g += 0.3
    ci = rng.random(shape).astype(np.float32)
    edge = rng.random(shape) < 0.05
    water = rng.random(shape) < 0.05
    want = snow_mask(g, r, s, 0.6, ci, edge, water, P)
    got = snow_mask(*(cp.asarray(x) for x in (g, r, s)), 0.6, cp.asarray(ci), cp.asarray(edge),
                    cp.asarray(water), P)
    assert isinstance(got, cp.ndarray)
    np.testing.assert_array_equal(got.get(), want)
    cloud = rng.random(shape) < 0.5
    ws, we = snow_mask_correction(want, cloud, edge)
    gs, ge = snow_mask_correction(cp.asarray(want), cp.asarray(cloud), cp.asarray(edge))
    np.testing.assert_array_equal(gs.get(), ws)
    np.testing.assert_array_equal(ge.get(), we)
    slope = rng.random(shape).astype(np.float32) * 40
    aspect = rng.random(shape).astype(np.float32) * 360
    np.testing.assert_allclose(cos_incidence(cp.asarray(slope), cp.asarray(aspect), 40.0, 160.0).get(),
                               cos_incidence(slope, aspect, 40.0, 160.0), rtol=1e-6, atol=1e-7)

"""Multi-date water mask over the PWA/TWA stacks (maja-l2a.md §1.7) on hand-made pixels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.masks.water_mt import water_mask_multi_date
from gpumaja.model.params import L2Params

P = L2Params()  # Min_Percent_Possible_Water 50 %, Water_Mask_Number 10


def _b(*rows):
    return np.array(rows, bool)


def test_hand_pixels():
    #                    px: 0  1  2  3  4  5  6
    p_today = _b([1, 0, 0, 0, 0, 1, 0])
    t_today = _b([1, 1, 1, 0, 0, 0, 1])
    pwa = np.array([_b([0, 1, 1, 1, 1, 0, 1]),
                    _b([0, 1, 0, 0, 1, 0, 0])])
    twa = np.array([_b([0, 1, 1, 1, 0, 1, 0]),
                    _b([0, 1, 1, 1, 0, 0, 0])])
    # 0: 1 possible / 1 tested -> water
    # 1: today tested dry, both stored dates wet: 2/3 -> water
    # 2: 1/3 -> not water
    # 3: untested today, 1 wet of 2 stored: 1/2 = 50 % -> water (>= is inclusive)
    # 4: possible water on dates where it was never tested -> no test at all -> not water
    # 5: possible today but not tested today (ignored), tested dry once -> 0/1
    # 6: stored possible water without its test is ignored: 0/1 -> not water
    got = water_mask_multi_date(p_today, t_today, pwa, twa, P)
    assert got.dtype == bool and got.shape == (1, 7)
    assert got[0].tolist() == [True, True, False, True, False, False, False]
    # at 75 %: only pixel 0 (100 %) stays water
    p75 = dataclasses.replace(P, min_percent_possible_water=75.0)
    assert water_mask_multi_date(p_today, t_today, pwa, twa, p75)[0].tolist() == [
        True, False, False, False, False, False, False]


def test_empty_stack_is_todays_possible_water():
    rng = np.random.default_rng(1)
    p, t = rng.random((2, 9, 11)) < 0.5
    empty = np.zeros((0, 9, 11), bool)
    np.testing.assert_array_equal(water_mask_multi_date(p, t, empty, empty, P), p & t)


def test_window_is_water_mask_number_dates():
    # today dry (tested), 2 stored wet dates, then 3 stored dry dates
    p_today, t_today = _b([0]), _b([1])
    pwa = np.array([_b([1]), _b([1]), _b([0]), _b([0]), _b([0])])
    twa = np.ones_like(pwa)
    # all 6 dates: 2/6 -> not water; window of 3 dates (today + 2 newest stored): 2/3 -> water
    assert not water_mask_multi_date(p_today, t_today, pwa, twa, P)[0, 0]
    assert water_mask_multi_date(p_today, t_today, pwa, twa, dataclasses.replace(P, water_mask_number=3))[0, 0]
    # water_mask_number = 1: today alone
    assert not water_mask_multi_date(p_today, t_today, pwa, twa,
                                     dataclasses.replace(P, water_mask_number=1))[0, 0]


def test_bad_inputs():
    z2, z3 = np.zeros((3, 4), bool), np.zeros((2, 3, 4), bool)
    with pytest.raises(ValueError, match="pwa"):
        water_mask_multi_date(z2, z2, z3, np.zeros((1, 3, 4), bool), P)
    with pytest.raises(ValueError, match="pwa"):
        water_mask_multi_date(z2, z2, np.zeros((2, 4, 3), bool), np.zeros((2, 4, 3), bool), P)
    with pytest.raises(ValueError, match="today"):
        water_mask_multi_date(z2, np.zeros((4, 3), bool), z3, z3, P)
    with pytest.raises(ValueError, match="min_percent"):
        water_mask_multi_date(z2, z2, z3, z3, dataclasses.replace(P, min_percent_possible_water=101.0))
    with pytest.raises(ValueError, match="water_mask_number"):
        water_mask_multi_date(z2, z2, z3, z3, dataclasses.replace(P, water_mask_number=0))


def _brute_force(p_today, t_today, pwa, twa, pct, n_window):
    """Pixel by pixel with Python ints."""
    out = np.zeros(p_today.shape, bool)
    layers = [(p_today, t_today)] + [(pwa[k], twa[k]) for k in range(min(len(pwa), n_window - 1))]
    for idx in np.ndindex(p_today.shape):
        tested = sum(int(t[idx]) for _, t in layers)
        possible = sum(int(p[idx] and t[idx]) for p, t in layers)
        out[idx] = tested > 0 and 100 * possible >= pct * tested
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 12), pct=st.sampled_from([0.0, 33.0, 50.0, 66.7, 100.0]),
       window=st.integers(1, 10))
def test_matches_counting_and_is_order_independent(seed, n, pct, window):
    rng = np.random.default_rng(seed)
    shape = (5, 6)
    p_today, t_today = rng.random((2, *shape)) < 0.5
    pwa, twa = rng.random((2, n, *shape)) < 0.5
    params = dataclasses.replace(P, min_percent_possible_water=pct, water_mask_number=window)
    got = water_mask_multi_date(p_today, t_today, pwa, twa, params)
    np.testing.assert_array_equal(got, _brute_force(p_today, t_today, pwa, twa, pct, window))
    # shuffling the dates inside the window does not change the decision
    k = min(n, window - 1)
    perm = np.concatenate([rng.permutation(k), np.arange(k, n)]).astype(int)
    np.testing.assert_array_equal(water_mask_multi_date(p_today, t_today, pwa[perm], twa[perm], params), got)


@pytest.mark.gpu
def test_gpu_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(7)
    shape = (458, 458)  # a full S2 coarse grid
    p_today, t_today = rng.random((2, *shape)) < 0.5
    for n in (0, 4, 10):
        pwa, twa = rng.random((2, n, *shape)) < 0.5
        want = water_mask_multi_date(p_today, t_today, pwa, twa, P)
        got = water_mask_multi_date(*(cp.asarray(a) for a in (p_today, t_today, pwa, twa)), P)
        assert isinstance(got, cp.ndarray)
        np.testing.assert_array_equal(got.get(), want)

"""WASP running synthesis (wasp-l3a-and-lis-snow.md §1.3 total weight, §1.5 update): a hand-checked
3-date toy series (weights, FLG priorities, weighted mean, minimum-blue rule, water over snow), the
processing order, order-independence properties (hypothesis), and the CUDA kernels against their NumPy
twins (marked gpu)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.backend import CPU
from gpumaja.l3a.synthesis import (
    SynthesisState,
    new_state,
    synthesis_order,
    total_weight,
    update_synthesis,
    wasp_update_numpy,
    wasp_weight_numpy,
)
from gpumaja.model.l3a import FLG_CLOUD, FLG_LAND, FLG_NODATA, FLG_SNOW, FLG_WATER
from gpumaja.model.wasp_params import WaspParams

P = WaspParams()
NaN = np.nan


def _copy(state: SynthesisState, xp=np) -> SynthesisState:
    return SynthesisState(*(xp.array(getattr(state, n)) for n in ("reflectance", "weight", "day", "flag", "blue")))


def _host_state(state: SynthesisState) -> SynthesisState:
    def h(a):
        return a.get() if hasattr(a, "get") else np.asarray(a)

    return SynthesisState(*(h(getattr(state, n)) for n in ("reflectance", "weight", "day", "flag", "blue")))


def _assert_same_state(a: SynthesisState, b: SynthesisState, atol: float = 0.0) -> None:
    a, b = _host_state(a), _host_state(b)
    np.testing.assert_array_equal(a.flag, b.flag)
    for n in ("reflectance", "weight", "day", "blue"):
        if atol == 0.0:
            np.testing.assert_array_equal(getattr(a, n), getattr(b, n), err_msg=n)
        else:
            np.testing.assert_allclose(getattr(a, n), getattr(b, n), rtol=0, atol=atol, equal_nan=True, err_msg=n)


# --- §1.3 total weight --------------------------------------------------------------------------------------


def test_total_weight_hand_values():
    aot = np.array([[0.4, 0.0, NaN, 1.0, -0.1, 0.2]], dtype=np.float32)
    wcld = np.array([[0.5, 1.0, 1.0, 0.8, 1.0, NaN]], dtype=np.float32)
    w = total_weight(aot, wcld, 0.33, 0.75, P, CPU)
    assert w.dtype == np.float32
    # W_aot: 0.665, 1, 0.33 (no data), 0.33, 0, (0.2 -> 0.33 + 0.67 * 0.75 = 0.8325; w_cloud NaN -> 0)
    expected = np.array([0.665 * 0.5, 1.0, 0.33, 0.33 * 0.8, 0.0, 0.0]) * 0.33 * 0.75
    np.testing.assert_allclose(w[0], expected, rtol=1e-6, atol=1e-8)
    assert np.all(w >= 0)


def test_total_weight_negative_cloud_weight_is_zero():
    w = wasp_weight_numpy(np.zeros((1, 2), np.float32), np.array([[-0.5, 0.5]], np.float32), 1.0, 1.0, P)
    np.testing.assert_array_equal(w, [[0.0, 0.5]])


def test_total_weight_takes_the_absolute_value():
    # the released code's integer division can give a negative date weight; |W| is kept (§1.3)
    w = total_weight(np.zeros((1, 1), np.float32), np.ones((1, 1), np.float32), 1.0, -0.5, P)
    assert w[0, 0] == np.float32(0.5)


# --- §1.5 toy series ----------------------------------------------------------------------------------------

DAYS = (100.0, 110.0, 120.0)
WEIGHTS = (0.5, 1.0, 0.25)
SHAPE = (2, 3)


def _refl(t: int) -> np.ndarray:
    """Distinct values per date t, band b, pixel (y, x)."""
    b, y, x = np.meshgrid(np.arange(2), np.arange(2), np.arange(3), indexing="ij")
    return (0.01 * (1 + t) + 0.1 * b + 0.02 * (3 * y + x)).astype(np.float32)


def _toy_dates():
    """Per date: (reflectance, weight, cloud, snow, water, blue), pixels:
    (0,0) land x3; (0,1) cloud, snow, land; (0,2) cloud x3 with blue .30 .20 .25;
    (1,0) snow, water+snow, cloud; (1,1) no data x3 (cloud, land, snow bits); (1,2) land, snow, cloud."""
    L, C, S, W, WS = "land", "cloud", "snow", "water", "water+snow"
    kinds = [
        [[L, C, C], [S, C, L]],
        [[L, S, C], [WS, L, S]],
        [[L, L, C], [C, S, C]],
    ]
    dates = []
    for t in range(3):
        r = _refl(t)
        r[:, 1, 1] = NaN
        k = np.array(kinds[t])
        cloud = k == C
        snow = (k == S) | (k == WS)
        water = (k == W) | (k == WS)
        weight = np.full(SHAPE, WEIGHTS[t], dtype=np.float32)
        blue = r[0].copy()
        blue[0, 2] = (0.30, 0.20, 0.25)[t]
        dates.append((r, weight, cloud, snow, water, blue))
    return dates


def _run(dates, order, xp=np, backend=CPU):
    state = new_state(2, SHAPE, xp)
    for i in order:
        r, w, c, s, wa, b = dates[i]
        update_synthesis(state, xp.asarray(r), xp.asarray(w), DAYS[i], xp.asarray(c), xp.asarray(s),
                         xp.asarray(wa), xp.asarray(b), backend)
    return state


def test_new_state():
    s = new_state(4, (3, 5))
    assert s.reflectance.shape == (4, 3, 5) and s.reflectance.dtype == np.float32 and np.all(np.isnan(s.reflectance))
    assert s.weight.dtype == np.float32 and np.all(s.weight == 0)
    assert np.all(np.isnan(s.day)) and np.all(np.isnan(s.blue))
    assert s.flag.dtype == np.uint8 and np.all(s.flag == FLG_NODATA)


def test_toy_series_priorities_and_weighted_mean():
    dates = _toy_dates()
    s = _run(dates, [0, 1, 2])
    r = [_refl(t) for t in range(3)]

    # (0,0) land x3: sum(W R) / sum(W), W = sum(W), D = sum(W d) / sum(W)
    wsum = sum(WEIGHTS)
    for b in range(2):
        expected = sum(WEIGHTS[t] * float(r[t][b, 0, 0]) for t in range(3)) / wsum
        assert s.reflectance[b, 0, 0] == pytest.approx(expected, rel=1e-6)
    assert s.weight[0, 0] == pytest.approx(wsum)
    assert s.day[0, 0] == pytest.approx(sum(WEIGHTS[t] * DAYS[t] for t in range(3)) / wsum, rel=1e-6)
    assert s.flag[0, 0] == FLG_LAND

    # (0,1) cloud, snow, land -> land (date 3) replaces the snow values entirely
    assert s.flag[0, 1] == FLG_LAND
    np.testing.assert_array_equal(s.reflectance[:, 0, 1], r[2][:, 0, 1])
    assert s.weight[0, 1] == np.float32(WEIGHTS[2]) and s.day[0, 1] == DAYS[2]

    # (0,2) cloud x3 -> darkest blue (date 2, blue 0.20)
    assert s.flag[0, 2] == FLG_CLOUD
    np.testing.assert_array_equal(s.reflectance[:, 0, 2], r[1][:, 0, 2])
    assert s.day[0, 2] == DAYS[1] and s.weight[0, 2] == 0 and s.blue[0, 2] == np.float32(0.20)

    # (1,0) snow, water+snow, cloud -> water (wins over snow, and the later cloud changes nothing)
    assert s.flag[1, 0] == FLG_WATER
    np.testing.assert_array_equal(s.reflectance[:, 1, 0], r[1][:, 1, 0])
    assert s.day[1, 0] == DAYS[1] and s.weight[1, 0] == 0

    # (1,1) never any valid reflectance -> no data whatever the masks said
    assert s.flag[1, 1] == FLG_NODATA
    assert np.all(np.isnan(s.reflectance[:, 1, 1])) and np.isnan(s.day[1, 1]) and s.weight[1, 1] == 0

    # (1,2) land, snow, cloud -> land of date 1 kept
    assert s.flag[1, 2] == FLG_LAND
    np.testing.assert_array_equal(s.reflectance[:, 1, 2], r[0][:, 1, 2])
    assert s.weight[1, 2] == np.float32(WEIGHTS[0]) and s.day[1, 2] == DAYS[0]


def test_snow_before_cloud_and_cloud_before_snow():
    dates = _toy_dates()
    # (1,0): snow then cloud keeps snow ... and (0,1): cloud then snow gives snow
    s = _run(dates, [0, 1])
    assert s.flag[0, 1] == FLG_SNOW
    np.testing.assert_array_equal(s.reflectance[:, 0, 1], _refl(1)[:, 0, 1])
    s = _run(dates, [0])
    assert s.flag[1, 0] == FLG_SNOW


def _one_pixel(state, values, weight, day, cloud=False, snow=False, water=False, blue=None):
    r = np.array(values, dtype=np.float32).reshape(-1, 1, 1)
    b = np.array([[values[0] if blue is None else blue]], dtype=np.float32)
    update_synthesis(state, r, np.array([[weight]], np.float32), day, np.array([[cloud]]), np.array([[snow]]),
                     np.array([[water]]), b, CPU)


def test_zero_weights_do_not_give_nan():
    s = new_state(2, (1, 1))
    _one_pixel(s, [0.5, 0.6], 0.0, 10.0, cloud=True)
    _one_pixel(s, [0.1, 0.2], 0.0, 12.0)  # clear land with a zero weight (deep in a cloud field)
    np.testing.assert_array_equal(s.reflectance[:, 0, 0], np.float32([0.1, 0.2]))
    assert s.weight[0, 0] == 0 and s.day[0, 0] == 12.0 and s.flag[0, 0] == FLG_LAND
    _one_pixel(s, [0.3, 0.4], 0.5, 14.0)  # first positive weight replaces the zero-weight value
    np.testing.assert_array_equal(s.reflectance[:, 0, 0], np.float32([0.3, 0.4]))
    assert s.weight[0, 0] == np.float32(0.5) and s.day[0, 0] == 14.0


def test_all_nan_date_changes_nothing():
    dates = _toy_dates()
    s = _run(dates, [0, 1, 2])
    before = _copy(s)
    nan = np.full((2, *SHAPE), NaN, np.float32)
    for masks in [(False, False, False), (True, False, False), (False, True, False), (False, False, True)]:
        c, sn, w = (np.full(SHAPE, m) for m in masks)
        update_synthesis(s, nan, np.ones(SHAPE, np.float32), 130.0, c, sn, w, np.full(SHAPE, 0.01, np.float32))
        _assert_same_state(s, before)


def test_partial_bands():
    s = new_state(2, (1, 1))
    _one_pixel(s, [0.2, NaN], 1.0, 10.0)  # band 1 missing
    _one_pixel(s, [0.4, 0.8], 1.0, 20.0)
    assert s.reflectance[0, 0, 0] == pytest.approx(0.3) and s.reflectance[1, 0, 0] == np.float32(0.8)
    assert s.weight[0, 0] == 2.0 and s.day[0, 0] == 15.0
    _one_pixel(s, [NaN, 0.2], 2.0, 30.0)  # band 0 missing: W and D follow band 1 (first valid)
    assert s.reflectance[0, 0, 0] == pytest.approx(0.3)
    assert s.reflectance[1, 0, 0] == pytest.approx((2 * 0.8 + 2 * 0.2) / 4)
    assert s.weight[0, 0] == 4.0 and s.day[0, 0] == pytest.approx((2 * 15 + 2 * 30) / 4)


def test_cloud_on_land_fills_missing_bands_only():
    s = new_state(2, (1, 1))
    _one_pixel(s, [0.2, NaN], 1.0, 10.0)
    _one_pixel(s, [0.9, 0.7], 0.0, 20.0, cloud=True)
    np.testing.assert_array_equal(s.reflectance[:, 0, 0], np.float32([0.2, 0.7]))
    assert s.flag[0, 0] == FLG_LAND and s.weight[0, 0] == 1.0 and s.day[0, 0] == 10.0


def test_snow_on_land_keeps_land():
    s = new_state(2, (1, 1))
    _one_pixel(s, [0.2, 0.3], 1.0, 10.0)
    _one_pixel(s, [0.9, 0.8], 1.0, 20.0, snow=True)
    np.testing.assert_array_equal(s.reflectance[:, 0, 0], np.float32([0.2, 0.3]))
    assert s.flag[0, 0] == FLG_LAND and s.weight[0, 0] == 1.0 and s.day[0, 0] == 10.0


def test_min_blue_rule_with_missing_bands_and_nan_blue():
    s = new_state(2, (1, 1))
    _one_pixel(s, [0.5, 0.6], 0.0, 10.0, cloud=True, blue=NaN)  # first cloud: no blue reference
    assert s.flag[0, 0] == FLG_CLOUD and np.isnan(s.blue[0, 0])
    _one_pixel(s, [0.4, NaN], 0.0, 12.0, cloud=True, blue=0.4)  # any valid blue beats NaN; band 1 kept
    np.testing.assert_array_equal(s.reflectance[:, 0, 0], np.float32([0.4, 0.6]))
    assert s.blue[0, 0] == np.float32(0.4) and s.day[0, 0] == 12.0
    _one_pixel(s, [0.45, 0.1], 0.0, 14.0, cloud=True, blue=0.45)  # brighter: ignored
    _one_pixel(s, [0.3, 0.1], 0.0, 16.0, cloud=True, blue=NaN)  # no blue: ignored
    np.testing.assert_array_equal(s.reflectance[:, 0, 0], np.float32([0.4, 0.6]))
    assert s.day[0, 0] == 12.0 and s.flag[0, 0] == FLG_CLOUD


# --- processing order -------------------------------------------------------------------------------------


def test_synthesis_order():
    # central 20: |dt| 10, 10, 2, 5 -> 10 (day 10) first, then day 30, then 25, then 22 last
    assert synthesis_order([10, 30, 22, 25], ["a", "b", "c", "d"], 20) == [0, 1, 3, 2]
    # same day: the id breaks the tie
    assert synthesis_order([5, 5], ["z", "a"], 0) == [1, 0]
    with pytest.raises(ValueError):
        synthesis_order([1, 2], ["a"], 0)


def test_snow_closest_to_the_central_date_wins():
    days = [10.0, 30.0, 22.0]
    values = [[0.5, 0.5], [0.7, 0.7], [0.9, 0.9]]
    for perm in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        s = new_state(2, (1, 1))
        ds, vs = [days[i] for i in perm], [values[i] for i in perm]
        for i in synthesis_order(ds, [f"p{d}" for d in ds], 20.0):
            _one_pixel(s, vs[i], 1.0, ds[i], snow=True)
        np.testing.assert_array_equal(s.reflectance[:, 0, 0], np.float32([0.9, 0.9]))
        assert s.day[0, 0] == 22.0 and s.flag[0, 0] == FLG_SNOW


# --- properties ---------------------------------------------------------------------------------------------


def _random_dates(rng: np.random.Generator, n: int, shape=(3, 4), nb: int = 2, land_only: bool = False):
    out = []
    for _ in range(n):
        r = rng.uniform(0.0, 0.6, (nb, *shape)).astype(np.float32)
        w = rng.uniform(0.01, 1.0, shape).astype(np.float32)
        if land_only:
            c = s = wa = np.zeros(shape, bool)
        else:
            r[rng.random((nb, *shape)) < 0.2] = NaN
            w[rng.random(shape) < 0.2] = 0.0
            bits = rng.integers(0, 8, shape)
            c, s, wa = (bits & 1) > 0, (bits & 2) > 0, (bits & 4) > 0
        blue = r[0].copy()
        out.append((r, w, c, s, wa, blue))
    return out


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), data=st.data())
@settings(max_examples=40, deadline=None)
def test_result_does_not_depend_on_input_order(seed, n, data):
    rng = np.random.default_rng(seed)
    dates = _random_dates(rng, n)
    days = [float(d) for d in rng.integers(0, 46, n)]
    ids = [f"id{i}" for i in range(n)]
    central = 23.0
    perm = data.draw(st.permutations(list(range(n))))

    def run(index):
        s = new_state(2, (3, 4))
        ds = [days[i] for i in index]
        for j in synthesis_order(ds, [ids[i] for i in index], central):
            i = index[j]
            update_synthesis(s, *dates[i][:2], days[i], *dates[i][2:], CPU)
        return s

    _assert_same_state(run(list(range(n))), run(perm))


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 6), data=st.data())
@settings(max_examples=40, deadline=None)
def test_land_only_weighted_mean_in_any_order(seed, n, data):
    rng = np.random.default_rng(seed)
    dates = _random_dates(rng, n, land_only=True)
    days = rng.uniform(0, 46, n)
    perm = data.draw(st.permutations(list(range(n))))
    s = new_state(2, (3, 4))
    for i in perm:
        update_synthesis(s, *dates[i][:2], float(np.float32(days[i])), *dates[i][2:], CPU)
    w = np.stack([d[1].astype(np.float64) for d in dates])
    r = np.stack([d[0].astype(np.float64) for d in dates])
    day = np.array([np.float32(x) for x in days], dtype=np.float64)
    np.testing.assert_allclose(s.reflectance, (w[:, None] * r).sum(0) / w.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.weight, w.sum(0), rtol=1e-5)
    np.testing.assert_allclose(s.day, (w * day[:, None, None]).sum(0) / w.sum(0), rtol=1e-5)
    assert np.all(s.flag == FLG_LAND)


# --- the vectorised twin against a per-pixel reading of the rules --------------------------------------


def _rules_one_pixel(R, W, D, F, B, cur, wc, day, cloud, snow, water, blue):
    """The §1.5 rules of the module doc for one pixel, scalar float32 (R, cur: lists of np.float32).
    Returns the new (R, W, D, F, B)."""
    f32 = np.float32
    valid = [not np.isnan(c) for c in cur]
    if not any(valid):
        return R, W, D, F, B
    R = list(R)
    wp = W if W > 0 else f32(0)
    wc = wc if wc > 0 else f32(0)
    d = f32(day)
    if not (cloud or snow or water):
        k = valid.index(True)
        prev_k = not np.isnan(R[k])
        s = f32(wp + wc)
        for b, c in enumerate(cur):
            if valid[b]:
                R[b] = f32(f32(f32(wp * R[b]) + f32(wc * c)) / s) if (not np.isnan(R[b]) and wp > 0) else c
        if prev_k and wp > 0:
            return R, s, f32(f32(f32(wp * D) + f32(wc * d)) / s), FLG_LAND, B
        return R, wc, d, FLG_LAND, B
    if not cloud:
        if wp == 0:
            R = [c if valid[b] else R[b] for b, c in enumerate(cur)]
            return R, f32(0), d, (FLG_WATER if water else FLG_SNOW), blue
        R = [c if np.isnan(R[b]) else R[b] for b, c in enumerate(cur)]
        return R, W, D, FLG_LAND, B
    if F == FLG_NODATA:
        return list(cur), f32(0), d, FLG_CLOUD, blue
    if F == FLG_CLOUD:
        if not np.isnan(blue) and (np.isnan(B) or blue < B):
            R = [c if valid[b] else R[b] for b, c in enumerate(cur)]
            return R, W, d, F, blue
        return R, W, D, F, B
    if F == FLG_LAND:
        R = [c if np.isnan(R[b]) else R[b] for b, c in enumerate(cur)]
    return R, W, D, F, B


@given(seed=st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_twin_follows_the_rules_pixel_by_pixel(seed):
    rng = np.random.default_rng(seed)
    nb, shape = 3, (4, 5)
    state = _random_state(rng, nb, shape)
    r, w, c, s, wa, b = _random_date(rng, nb, shape)
    day = float(rng.uniform(0, 365))
    expected = _copy(state)
    for y in range(shape[0]):
        for x in range(shape[1]):
            out = _rules_one_pixel(
                [expected.reflectance[i, y, x] for i in range(nb)], expected.weight[y, x], expected.day[y, x],
                int(expected.flag[y, x]), expected.blue[y, x], [r[i, y, x] for i in range(nb)], w[y, x], day,
                bool(c[y, x]), bool(s[y, x]), bool(wa[y, x]), b[y, x])
            expected.reflectance[:, y, x] = out[0]
            expected.weight[y, x], expected.day[y, x], expected.flag[y, x], expected.blue[y, x] = out[1:]
    wasp_update_numpy(state, r, w, day, c, s, wa, b)
    _assert_same_state(state, expected)


# --- GPU kernels against the NumPy twins ------------------------------------------------------------------


def _random_state(rng: np.random.Generator, nb: int, shape) -> SynthesisState:
    r = rng.uniform(0, 0.8, (nb, *shape)).astype(np.float32)
    r[rng.random(r.shape) < 0.25] = NaN
    w = rng.uniform(0, 3, shape).astype(np.float32)
    w[rng.random(shape) < 0.4] = 0.0
    d = rng.uniform(0, 365, shape).astype(np.float32)
    d[rng.random(shape) < 0.1] = NaN
    f = rng.integers(0, 5, shape).astype(np.uint8)
    b = rng.uniform(0, 0.5, shape).astype(np.float32)
    b[rng.random(shape) < 0.2] = NaN
    return SynthesisState(r, w, d, f, b)


def _random_date(rng: np.random.Generator, nb: int, shape):
    r = rng.uniform(0, 0.8, (nb, *shape)).astype(np.float32)
    r[rng.random(r.shape) < 0.2] = NaN
    r[:, rng.random(shape) < 0.1] = NaN  # whole pixels without data
    w = rng.uniform(-0.1, 1.0, shape).astype(np.float32)
    w[rng.random(shape) < 0.2] = 0.0
    w[rng.random(shape) < 0.05] = NaN
    bits = rng.integers(0, 8, shape)  # all cloud / snow / water combinations
    b = rng.uniform(0, 0.5, shape).astype(np.float32)
    b[rng.random(shape) < 0.1] = NaN
    return r, w, (bits & 1) > 0, (bits & 2) > 0, (bits & 4) > 0, b


@pytest.mark.gpu
def test_wasp_weight_kernel_matches_twin_on_random_inputs():
    import cupy

    from gpumaja.backend import Backend

    gpu = Backend("gpu", cupy, "test")
    rng = np.random.default_rng(11)
    shape = (257, 311)
    aot = rng.uniform(-0.5, 1.5, shape).astype(np.float32)
    aot[rng.random(shape) < 0.1] = NaN
    aot[0, :5] = [0.0, 0.8, -0.0, 0.4, 1e-30]
    wc = rng.uniform(-0.2, 1.2, shape).astype(np.float32)
    wc[rng.random(shape) < 0.05] = NaN
    for ws, wd in ((1.0, 1.0), (0.33, 0.75), (1.0, -0.5)):
        cpu = wasp_weight_numpy(aot, wc, ws, wd, P)
        dev = total_weight(cupy.asarray(aot), cupy.asarray(wc), ws, wd, P, gpu)
        assert isinstance(dev, cupy.ndarray) and dev.dtype == cupy.float32
        np.testing.assert_array_equal(dev.get(), cpu)


@pytest.mark.gpu
def test_wasp_update_kernel_matches_twin_on_random_inputs():
    import cupy

    from gpumaja.backend import Backend

    gpu = Backend("gpu", cupy, "test")
    rng = np.random.default_rng(5)
    for nb, shape in ((4, (64, 97)), (6, (33, 41)), (1, (5, 7))):
        cpu = _random_state(rng, nb, shape)
        dev = _copy(cpu, cupy)
        for t in range(5):
            r, w, c, s, wa, b = _random_date(rng, nb, shape)
            day = float(rng.uniform(0, 365))
            wasp_update_numpy(cpu, r, w, day, c, s, wa, b)
            update_synthesis(dev, *(cupy.asarray(a) for a in (r, w)), day,
                             *(cupy.asarray(a) for a in (c, s, wa, b)), gpu)
            assert isinstance(dev.reflectance, cupy.ndarray)
            _assert_same_state(dev, cpu, atol=1e-6)


@pytest.mark.gpu
def test_kernels_match_twins_on_a_realistic_field():
    import cupy
    import scipy.ndimage

    from gpumaja.backend import Backend
    from gpumaja.l3a.weights import cloud_weight_map, date_weight, sensor_weight

    gpu = Backend("gpu", cupy, "test")
    rng = np.random.default_rng(2024)
    shape, nb, f = (480, 600), 4, 24
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    surface = np.stack([0.03 + 0.02 * b + 0.05 * np.sin(xx / 37.0 + b) * np.cos(yy / 53.0) for b in range(nb)])
    water = (xx < 60)
    days = [100.0, 104.0, 110.0, 115.0, 121.0, 130.0]
    cpu = new_state(nb, shape)
    dev = new_state(nb, shape, cupy)
    for t, day in enumerate(days):
        blobs = scipy.ndimage.gaussian_filter(rng.random((shape[0] // 8, shape[1] // 8)), 2)
        cloud = np.kron(blobs > np.quantile(blobs, 0.6 + 0.05 * t), np.ones((8, 8), bool))
        snow = ((yy - 300) ** 2 + (xx - 400) ** 2 < (40 + 5 * t) ** 2)
        refl = (surface + rng.normal(0, 0.005, surface.shape)).astype(np.float32)
        refl[:, cloud] += 0.3
        refl[:, snow] = 0.8
        refl[:, :, -20 * t - 1:] = NaN  # a swath edge moving across
        aot = (0.1 + 0.3 * xx / shape[1] + 0.05 * rng.random(shape)).astype(np.float32)
        aot[::97, ::89] = NaN
        valid = ~np.isnan(refl[0])
        wcld = cloud_weight_map(cloud, valid, f, P)
        ws, wd = sensor_weight("SENTINEL2A", P), date_weight(day - 115.0, P)
        w_cpu = total_weight(aot, wcld, ws, wd, P, CPU)
        w_dev = total_weight(cupy.asarray(aot), cupy.asarray(wcld), ws, wd, P, gpu)
        np.testing.assert_array_equal(w_dev.get(), w_cpu)
        blue = refl[0]
        update_synthesis(cpu, refl, w_cpu, day, cloud, snow, water, blue, CPU)
        update_synthesis(dev, cupy.asarray(refl), w_dev, day, cupy.asarray(cloud), cupy.asarray(snow),
                         cupy.asarray(water), cupy.asarray(blue), gpu)
        _assert_same_state(dev, cpu, atol=1e-6)
    flags = set(np.unique(cpu.flag).tolist())
    assert {FLG_LAND, FLG_WATER} <= flags

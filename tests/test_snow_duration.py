"""Annual snow cover duration (wasp-l3a-and-lis-snow.md §3): hand cases written from the rules,
hypothesis properties, an independent pure-Python per-pixel reference, and the CUDA kernel against
its NumPy twin (marked gpu)."""

from __future__ import annotations

import tracemalloc
from datetime import date, datetime
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpumaja.backend import CPU, Backend
from gpumaja.model.lis_params import ScdParams
from gpumaja.snow import duration
from gpumaja.snow.duration import (
    DurationArrays,
    classify_codes,
    day_offsets,
    merge_same_day,
    period_for_year,
    select_inputs,
    snow_duration,
    snow_duration_numpy,
)

P = ScdParams()
YEAR = 365
CLOUD, NODATA, NODATA_OLD, SNOW, NO_SNOW = 205, 255, 254, 100, 0


def _one_pixel(values, days, n_days=YEAR, params=P, **kw) -> tuple[int, int, int, int]:
    codes = np.array(values, dtype=np.uint8).reshape(len(values), 1, 1)
    r = snow_duration(codes, np.array(days, dtype=np.int32), n_days, params, CPU, **kw)
    return int(r.scd[0, 0]), int(r.sod[0, 0]), int(r.smod[0, 0]), int(r.nobs[0, 0])


# --- hand cases (expectations from the §3 rules) ------------------------------------------------------


def test_issue_case_snow_day10_day30_no_snow_day50():
    # days 0..9: before the first valid observation -> its value (snow), constant extrapolation
    # days 10..30: between two snow observations -> 1
    # days 31..49: v = 1 - (d - 30)/20 >= 0.5 <=> d <= 40 (d = 40 is the midpoint: snow)
    # days 50..364: the last observation (no snow)
    # -> snow days 0..40: SCD 41, one run: SOD 0, SMOD 40; 3 clear observations
    assert _one_pixel([SNOW, SNOW, NO_SNOW], [10, 30, 50]) == (41, 0, 40, 3)


def test_cloudy_and_nodata_observations_are_ignored():
    # the issue case plus a cloud on day 20, nodata on 35 and 45 (old and new label), cloud on 300
    values = [SNOW, CLOUD, SNOW, NODATA, NODATA_OLD, NO_SNOW, CLOUD]
    days = [10, 20, 30, 35, 45, 50, 300]
    assert _one_pixel(values, days) == (41, 0, 40, 3)


def test_pixel_never_seen_clear_is_zero_everywhere():
    assert _one_pixel([CLOUD, NODATA, NODATA_OLD, 180], [5, 100, 200, 300]) == (0, 0, 0, 0)
    assert _one_pixel([], []) == (0, 0, 0, 0)


def test_fsc_counts_as_snow_in_lis_new_but_not_in_lis_15():
    # one clear observation, FSC 50 %, on day 100: its value for the whole period
    assert _one_pixel([50], [100]) == (YEAR, 0, YEAR - 1, 1)
    lis15 = ScdParams(fsc_counts_as_snow=False)
    assert _one_pixel([50], [100], params=lis15) == (0, 0, 0, 1)  # clear, no snow
    assert _one_pixel([SNOW], [100], params=lis15) == (YEAR, 0, YEAR - 1, 1)


def test_two_runs_the_longer_second():
    # 0..12 snow; 13 = midpoint of 12 (snow) .. 14 (no) -> snow: run 0..13 (14 days)
    # 14..100 no; 101 = midpoint of 100 (no) .. 102 (snow) -> snow; 102..200 snow; 201 midpoint -> snow
    # run 101..201 (101 days); 202.. no.  SCD = 14 + 101 = 115
    values = [SNOW, SNOW, NO_SNOW, NO_SNOW, SNOW, SNOW, NO_SNOW]
    days = [0, 12, 14, 100, 102, 200, 202]
    assert _one_pixel(values, days) == (115, 101, 201, 7)


def test_tie_of_runs_goes_to_the_first():
    # two 20-day runs, 10..29 and 60..79, with one-day transitions (no interpolated snow day)
    values = [NO_SNOW, SNOW, SNOW, NO_SNOW, NO_SNOW, SNOW, SNOW, NO_SNOW]
    days = [9, 10, 29, 30, 59, 60, 79, 80]
    assert _one_pixel(values, days) == (40, 10, 29, 8)


def test_sod_smod_only_above_ten_snow_days():
    # 10 snow days (100..109): SOD = SMOD = 0
    assert _one_pixel([NO_SNOW, SNOW, SNOW, NO_SNOW], [99, 100, 109, 110]) == (10, 0, 0, 4)
    # 11 snow days (100..110)
    assert _one_pixel([NO_SNOW, SNOW, SNOW, NO_SNOW], [99, 100, 110, 111]) == (11, 100, 110, 4)


def test_same_day_merge_s2_cloudy_l8_snow_is_snow():
    # S2 cloudy then L8 snow on day 5: merged snow, the only valid observation -> snow all year
    assert _one_pixel([CLOUD, SNOW], [5, 5]) == (YEAR, 0, YEAR - 1, 1)
    # S2 clear no-snow has priority over L8 snow
    assert _one_pixel([NO_SNOW, SNOW], [5, 5]) == (0, 0, 0, 2)
    # list order is the priority among the products of one day, other days in between
    # day 5 = S2 snow (first clear), day 200 snow: snow all year
    assert _one_pixel([SNOW, SNOW, NO_SNOW], [200, 5, 5]) == (YEAR, 0, YEAR - 1, 3)
    # day 5 = no snow, day 200 snow: 2 (d - 5) >= 195 <=> d >= 103 -> snow 103..364
    assert _one_pixel([SNOW, NO_SNOW, SNOW], [200, 5, 5]) == (262, 103, 364, 3)
    assert _one_pixel([SNOW, CLOUD, NO_SNOW], [200, 5, 5]) == (262, 103, 364, 2)


def test_nobs_counts_margin_dates_and_same_day_duplicates():
    # clear on day -10 (margin), twice clear on day 5 (S2 and L8), cloudy on 370 (margin), nodata on 40
    scd, sod, smod, nobs = _one_pixel([NO_SNOW, NO_SNOW, SNOW, CLOUD, NODATA], [-10, 5, 5, 370, 40])
    assert nobs == 3
    assert (scd, sod, smod) == (0, 0, 0)  # day 5 merges to S2's no-snow


def test_margin_observation_interpolates_into_the_period():
    # snow on day -10, no snow on day 10: v(d) = 1 - (d + 10)/20 >= 0.5 <=> d <= 0 -> day 0 only
    assert _one_pixel([SNOW, NO_SNOW], [-10, 10]) == (1, 0, 0, 2)
    # no snow on day 355, snow on 375 (after the period): 2 (d - 355) >= 20 <=> d >= 365 -> none inside
    assert _one_pixel([NO_SNOW, SNOW], [355, 375]) == (0, 0, 0, 2)
    assert _one_pixel([NO_SNOW, SNOW], [354, 374]) == (1, 0, 0, 2)  # day 364 is the midpoint


def test_other_threshold_is_exact():
    # snow on day 0, no snow on day 8: v = 1 - d/8 >= 0.75 <=> d <= 2
    assert _one_pixel([SNOW, NO_SNOW], [0, 8], params=ScdParams(snow_threshold=0.75))[0] == 3
    # v >= 1/3 exactly: 1 - d/9 >= 1/3 <=> d <= 6
    assert _one_pixel([SNOW, NO_SNOW], [0, 9], params=ScdParams(snow_threshold=1 / 3))[0] == 7
    with pytest.raises(ValueError, match="snow_threshold"):
        _one_pixel([SNOW], [0], params=ScdParams(snow_threshold=0.0))


def test_unsorted_input_equals_sorted():
    rng = np.random.default_rng(3)
    codes = rng.choice(np.array([0, 100, 205, 255, 37], np.uint8), size=(9, 4, 5))
    days = np.array([40, -3, 12, 200, 12, 90, 370, 5, 150], np.int32)
    order = np.argsort(days, kind="stable")
    a = snow_duration(codes, days, YEAR, P, CPU)
    b = snow_duration(codes[order], days[order], YEAR, P, CPU)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_nobs_codes_replace_the_stack_for_nobs():
    codes = np.array([[[SNOW]], [[NO_SNOW]]], np.uint8)
    extra = np.array([[[SNOW]], [[CLOUD]], [[NO_SNOW]], [[0]]], np.uint8)
    r = snow_duration(codes, [0, 20], YEAR, P, CPU, nobs_codes=extra)
    assert int(r.nobs[0, 0]) == 3
    assert int(r.scd[0, 0]) == 11  # 0..10 (10 = midpoint)
    with pytest.raises(ValueError, match="nobs_codes"):
        snow_duration(codes, [0, 20], YEAR, P, CPU, nobs_codes=np.zeros((2, 2, 1), np.uint8))


def test_output_types_and_input_checks():
    codes = np.zeros((2, 3, 4), np.uint8)
    r = snow_duration(codes, [1, 2], 30, P, CPU)
    assert isinstance(r, DurationArrays)
    assert all(a.dtype == np.uint16 and a.shape == (3, 4) for a in r)
    with pytest.raises(ValueError, match="shape"):
        snow_duration(codes, [1, 2, 3], 30, P, CPU)
    with pytest.raises(ValueError, match="uint8"):
        snow_duration(codes.astype(np.int16), [1, 2], 30, P, CPU)
    with pytest.raises(ValueError, match="ascending"):
        snow_duration_numpy(codes, np.array([2, 1], np.int32), 30, P)
    with pytest.raises(ValueError, match="ascending"):
        snow_duration_numpy(codes, np.array([1, 1], np.int32), 30, P)
    with pytest.raises(ValueError, match="n_days"):
        snow_duration(codes, [1, 2], 70000, P, CPU)


# --- merge and binarisation -----------------------------------------------------------------------------


def test_merge_same_day_rule():
    a = np.array([CLOUD, NODATA, NO_SNOW, 50, CLOUD, NODATA], np.uint8)
    b = np.array([SNOW, CLOUD, SNOW, NO_SNOW, NODATA, CLOUD], np.uint8)
    # first product <= 100, else the last product's value
    np.testing.assert_array_equal(merge_same_day([a, b], np), [SNOW, CLOUD, NO_SNOW, 50, NODATA, CLOUD])
    c = np.array([NODATA, NODATA, NODATA, NODATA, 30, NODATA_OLD], np.uint8)
    np.testing.assert_array_equal(merge_same_day([a, b, c], np), [SNOW, NODATA, NO_SNOW, 50, 30, NODATA_OLD])
    np.testing.assert_array_equal(merge_same_day([c], np), c)
    with pytest.raises(ValueError):
        merge_same_day([], np)


def test_classify_codes():
    v = np.array([0, 1, 50, 100, 101, 150, 204, 205, 206, 254, 255], np.uint8)
    snow, clear = classify_codes(v, P, np)
    np.testing.assert_array_equal(clear, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(snow, [0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    snow15, clear15 = classify_codes(v, ScdParams(fsc_counts_as_snow=False), np)
    np.testing.assert_array_equal(clear15, clear)
    np.testing.assert_array_equal(snow15, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])


# --- period and input selection --------------------------------------------------------------------------


def test_period_for_year_is_the_hydrological_year_ending_in_year():
    assert period_for_year(2018, P) == (date(2017, 9, 1), date(2018, 8, 31))
    s, e = period_for_year(2020, P)  # contains 29 Feb 2020
    assert (s, e) == (date(2019, 9, 1), date(2020, 8, 31)) and (e - s).days + 1 == 366
    s, e = period_for_year(2019, P)
    assert (e - s).days + 1 == 365
    south = ScdParams(period_start_month=3, period_start_day=1)
    assert period_for_year(2018, south) == (date(2017, 3, 1), date(2018, 2, 28))
    assert period_for_year(2020, south) == (date(2019, 3, 1), date(2020, 2, 29))
    calendar = ScdParams(period_start_month=1, period_start_day=1)
    assert period_for_year(2018, calendar) == (date(2018, 1, 1), date(2018, 12, 31))
    with pytest.raises(ValueError, match="period start"):
        period_for_year(2018, ScdParams(period_start_month=2, period_start_day=30))


def test_select_inputs_with_margin():
    start, stop = period_for_year(2018, P)  # margin 15 days
    dates = [date(2017, 8, 16), date(2017, 8, 17), date(2017, 9, 1), datetime(2018, 1, 5, 10, 30),
             date(2018, 8, 31), date(2018, 9, 15), date(2018, 9, 16), date(2016, 12, 1)]
    assert select_inputs(dates, start, stop, P) == [1, 2, 3, 4, 5]
    assert select_inputs(dates, start, stop, ScdParams(date_margin_days=0)) == [2, 3, 4]
    assert select_inputs([], start, stop, P) == []
    np.testing.assert_array_equal(day_offsets([dates[i] for i in (1, 2, 3, 5)], start), [-15, 0, 126, 379])


# --- independent pure-Python per-pixel reference ------------------------------------------------------------


def _reference_pixel(values, days, n_days, params) -> tuple[int, int, int, int]:
    """Merge, binarise, interpolate day by day with exact fractions, count, find the runs (§3)."""
    nobs = sum(1 for v in values if v <= 100)
    merged = {}
    for d in sorted(set(days)):
        same = [v for v, dd in zip(values, days, strict=True) if dd == d]  # in the given order
        clear = [v for v in same if v <= 100]
        merged[d] = clear[0] if clear else same[-1]
    obs = []
    for d in sorted(merged):
        v = merged[d]
        if v <= 100:
            is_snow = (v > 0) if params.fsc_counts_as_snow else (v == 100)
            obs.append((d, 1 if is_snow else 0))
    thr = Fraction(params.snow_threshold)
    daily = []
    for t in range(n_days):
        before = [o for o in obs if o[0] <= t]
        after = [o for o in obs if o[0] > t]
        if not obs:
            y = Fraction(0)
        elif not before:
            y = Fraction(after[0][1])
        elif not after or before[-1][0] == t:
            y = Fraction(before[-1][1])
        else:
            (t1, y1), (t2, y2) = before[-1], after[0]
            y = y1 + Fraction((y2 - y1) * (t - t1), t2 - t1)
        daily.append(y >= thr)
    scd = sum(daily)
    runs, start = [], None
    for t, s in enumerate(daily + [False]):
        if s and start is None:
            start = t
        elif not s and start is not None:
            runs.append((start, t - 1))
            start = None
    sod = smod = 0
    if scd > params.min_snow_days_for_sod:
        sod, smod = max(runs, key=lambda r: r[1] - r[0])  # max keeps the first of equals
    return scd, sod, smod, nobs


CODE_VALUES = [0, 1, 37, 100, 150, 205, 254, 255]


@st.composite
def _stacks(draw, values=CODE_VALUES, max_t=7):
    t = draw(st.integers(0, max_t))
    h = draw(st.integers(1, 3))
    w = draw(st.integers(1, 3))
    n_days = draw(st.integers(1, 45))
    days = draw(st.lists(st.integers(-8, n_days + 8), min_size=t, max_size=t))
    codes = draw(st.lists(st.sampled_from(values), min_size=t * h * w, max_size=t * h * w))
    return np.array(codes, np.uint8).reshape(t, h, w), np.array(days, np.int32), n_days


_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_stacks(), st.booleans())
def test_wrapper_equals_pure_python_reference(stack, fsc):
    codes, days, n_days = stack
    params = ScdParams(fsc_counts_as_snow=fsc)
    r = snow_duration(codes, days, n_days, params, CPU)
    for y in range(codes.shape[1]):
        for x in range(codes.shape[2]):
            ref = _reference_pixel([int(v) for v in codes[:, y, x]], [int(d) for d in days], n_days, params)
            got = tuple(int(a[y, x]) for a in r)
            assert got == ref, (y, x, codes[:, y, x], days)


@_SETTINGS
@given(_stacks(max_t=9))
def test_twin_on_unique_sorted_days_equals_reference(stack):
    codes, days, n_days = stack
    days, first = np.unique(days, return_index=True)
    codes = codes[first]
    scd, sod, smod = snow_duration_numpy(codes, days, n_days, P)
    for y in range(codes.shape[1]):
        for x in range(codes.shape[2]):
            ref = _reference_pixel([int(v) for v in codes[:, y, x]], [int(d) for d in days], n_days, P)
            assert (int(scd[y, x]), int(sod[y, x]), int(smod[y, x])) == ref[:3]


@_SETTINGS
@given(_stacks(max_t=12))
def test_invariants(stack):
    codes, days, n_days = stack
    scd, sod, smod, nobs = snow_duration(codes, days, n_days, P, CPU)
    assert (nobs <= codes.shape[0]).all()
    assert (scd <= n_days).all()
    long = scd > P.min_snow_days_for_sod
    assert (sod[long] <= smod[long]).all()
    assert (smod[long] < n_days).all()
    assert (smod[long].astype(int) - sod[long] + 1 <= scd[long]).all()
    assert (sod[~long] == 0).all() and (smod[~long] == 0).all()
    assert (scd[nobs == 0] == 0).all()


@_SETTINGS
@given(_stacks(values=[1, 37, 100, 205, 254, 255], max_t=10))
def test_all_clear_observations_snow_gives_every_day(stack):
    codes, days, n_days = stack
    scd, sod, smod, nobs = snow_duration(codes, days, n_days, P, CPU)
    seen = nobs > 0
    assert (scd[seen] == n_days).all()
    assert (scd[~seen] == 0).all()
    if n_days > P.min_snow_days_for_sod:
        assert (sod[seen] == 0).all() and (smod[seen] == n_days - 1).all()


# --- strips and memory ---------------------------------------------------------------------------------------


def _seasonal_stack(h=48, w=64, seed=0):
    """A snow line moving with the season over an elevation ramp, clouds, a nodata edge, FSC near the
    line, S2 every 5 days and Landsat every 16 (sharing some days), margin dates included."""
    rng = np.random.default_rng(seed)
    z = np.linspace(3200.0, 300.0, h)[:, None] + rng.normal(0.0, 80.0, (h, w))
    s2 = list(range(-15, YEAR + 15, 5))
    l8 = list(range(-12, YEAR + 15, 16))
    days = np.array(s2 + l8, np.int32)
    layers = []
    for k, d in enumerate(days):
        # snow line 2800 m in September, down to 600 m in January-February, back up by summer
        line = 2800.0 - 2200.0 * np.sin(np.pi * np.clip(d, 0, YEAR) / YEAR) ** 2
        above = z - line
        code = np.where(above > 0, 100, 0).astype(np.int16)
        fringe = (above > 0) & (above < 200)
        code[fringe] = np.clip(above[fringe] / 2, 1, 100).astype(np.int16)
        cloud = rng.random((h, w)) < (0.35 if k < len(s2) else 0.5)
        cloud |= (np.arange(w)[None, :] + 3 * (k % 7)) < rng.integers(0, 6)  # swath edge clouds
        code[cloud] = CLOUD
        if k % 4 == 0:
            code[:, : w // 5] = NODATA
        if k % 9 == 0:
            code[: h // 6] = NODATA_OLD
        layers.append(code.astype(np.uint8))
    return np.stack(layers), days, z


def test_strips_do_not_change_the_result(monkeypatch):
    codes, days, _ = _seasonal_stack(h=20, w=24)
    whole = snow_duration(codes, days, YEAR, P, CPU)
    monkeypatch.setattr(duration, "_STRIP_ELEMENTS", codes.shape[0] * 24 * 3)  # 3-row strips
    assert duration._rows_per_strip(codes.shape[0], 24) == 3
    strips = snow_duration(codes, days, YEAR, P, CPU)
    for a, b in zip(whole, strips, strict=True):
        np.testing.assert_array_equal(a, b)
    days_u, first = np.unique(days, return_index=True)
    one = snow_duration_numpy(codes[first], days_u, YEAR, P, rows_per_strip=1)
    full = snow_duration_numpy(codes[first], days_u, YEAR, P, rows_per_strip=1000)
    for a, b in zip(one, full, strict=True):
        np.testing.assert_array_equal(a, b)


def test_seasonal_stack_is_plausible():
    codes, days, z = _seasonal_stack()
    scd, sod, smod, nobs = snow_duration(codes, days, YEAR, P, CPU)
    assert nobs.max() <= codes.shape[0]
    row_scd = scd.mean(axis=1)
    assert row_scd[0] > 250 and row_scd[-1] < 60  # high rows snowy most of the year, low rows seldom
    assert np.all(np.diff(row_scd[::8]) < 0)
    snowy = scd > 120
    assert (sod[snowy] < smod[snowy]).all() and (smod[snowy] < YEAR).all()
    seasonal = (scd > 120) & (scd < 250)  # below the September snow line: the season starts later
    assert seasonal.sum() > 100 and (sod[seasonal] > 0).all() and (smod[seasonal] < YEAR - 1).all()


def test_cpu_temporaries_are_bounded_by_strips(monkeypatch):
    codes, days, _ = _seasonal_stack(h=64, w=64, seed=2)
    t = codes.shape[0]
    monkeypatch.setattr(duration, "_STRIP_ELEMENTS", t * 64 * 4)  # 4-row strips
    tracemalloc.start()
    try:
        snow_duration(codes, days, YEAR, P, CPU)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < codes.nbytes  # strips: the temporaries stay well below the stack's size


# --- GPU: kernel == NumPy twin -------------------------------------------------------------------------------


def _gpu() -> Backend:
    import cupy

    return Backend("gpu", cupy, "test GPU")


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gpu_kernel_matches_twin_random(seed):
    import cupy

    rng = np.random.default_rng(seed)
    t, h, w = 23, 37, 53
    codes = rng.choice(np.array([0, 100, 205, 255, 37], np.uint8), size=(t, h, w), p=[0.3, 0.3, 0.2, 0.1, 0.1])
    days = rng.integers(-15, YEAR + 15, size=t).astype(np.int32)
    days[3] = days[7]  # a same-day pair
    for params in (P, ScdParams(fsc_counts_as_snow=False), ScdParams(snow_threshold=1 / 3)):
        cpu = snow_duration(codes, days, YEAR, params, CPU)
        gpu = snow_duration(cupy.asarray(codes), days, YEAR, params, _gpu())
        for name, a, b in zip(DurationArrays._fields, cpu, gpu, strict=True):
            assert isinstance(b, cupy.ndarray)
            np.testing.assert_array_equal(a, b.get(), err_msg=name)
    days_u, first = np.unique(days, return_index=True)
    twin = snow_duration_numpy(codes[first], days_u, YEAR, P)
    kern = snow_duration(cupy.asarray(codes[first]), days_u, YEAR, P, _gpu())
    for a, b in zip(twin, kern[:3], strict=True):
        np.testing.assert_array_equal(a, b.get())


@pytest.mark.gpu
def test_gpu_kernel_matches_twin_seasonal():
    import cupy

    codes, days, _ = _seasonal_stack(h=96, w=160, seed=5)
    cpu = snow_duration(codes, days, 366, P, CPU)
    gpu = snow_duration(codes, days, 366, P, _gpu())  # NumPy input, GPU backend
    for name, a, b in zip(DurationArrays._fields, cpu, gpu, strict=True):
        assert isinstance(b, cupy.ndarray)
        np.testing.assert_array_equal(a, b.get(), err_msg=name)


@pytest.mark.gpu
def test_gpu_empty_and_index_guard():
    import cupy

    r = snow_duration(cupy.zeros((0, 4, 5), cupy.uint8), np.zeros(0, np.int32), YEAR, P, _gpu())
    assert all(int(a.max()) == 0 and a.shape == (4, 5) for a in r)
    huge = cupy.broadcast_to(cupy.zeros((1, 1, 1), cupy.uint8), (1, 46341, 46341))
    with pytest.raises(ValueError, match="32-bit"):
        snow_duration(huge, np.zeros(1, np.int32), YEAR, P, _gpu())

"""Spectro-temporal AOT (maja-l2a.md §3.5, NOMINAL mode): insensitive interval, MT selection, LPD,
weights, the 2-unknown inversion (kernel + NumPy twin) and its MS fallback.

Synthetic truth: the mini-LUTs are built from a simple analytic atmosphere (as tests/test_atmosphere_aot.py),
one for the date D and another geometry ("sun higher") for the previous date (the LTC table). The TOA*
of a known surface at a known AOT is obtained by inverting the LUT's own TOC table numerically here
(trilinear interpolation by scipy's RegularGridInterpolator + bisection on TOA*), independently of the
code under test, so the inversion must recover the AOT up to the LM tolerance.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import RegularGridInterpolator

from gpumaja.atmosphere.aot import aot_multispectral_numpy, aot_node_positions
from gpumaja.atmosphere.aot_st import (
    PXD_NODATA,
    aot_insensitive_interval,
    aot_spectrotemporal,
    aot_spectrotemporal_numpy,
    local_previous_date,
    mt_selection,
    mt_weights,
)
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.backend import CPU
from gpumaja.errors import InputError
from gpumaja.model.params import L2Params

# The analytic LUTs here hold the sea-level AOT on their AOT axis (te = τ·exp(−h/2000)), so MAJA's
# one-τ-per-window method (aot_height_scale_m = 0) is exact on them. Real LUTs (6S, MAJA's GIPP) hold
# the column above the pixel: the height factor is tested on such a LUT in tests/test_atmosphere_aot.py.
PARAMS = L2Params(aot_height_scale_m=0.0)
BANDS = ("B01", "B04")
P0 = np.array([0.10, 0.04])  # molecular path reflectance at sea level
P1 = np.array([0.20, 0.09])  # aerosol path reflectance per unit AOT
TX = np.array([0.35, 0.20])  # aerosol extinction in the two-way transmission
ALT = np.arange(0.0, 3001.0, 250.0)
AOT = np.arange(25) * 0.0625  # 0 .. 1.5
TOA = np.arange(-0.2, 1.2001, 0.02)
DAY = 9000


def _inverse(b, toa, tau, h, geom):
    te = tau * np.exp(-h / 2000.0) * geom
    r = np.exp(-h / 8000.0)
    p, t, s = P0[b] * r * geom + P1[b] * te, np.exp(-TX[b] * te - 0.1 * r), 0.12 + 0.06 * te
    y = toa - p
    return y / (t + s * y)


def _tables(geom: float) -> np.ndarray:
    a, k, r = np.meshgrid(ALT, AOT, TOA, indexing="ij")
    return np.stack([_inverse(b, r, k, a, geom) for b in range(len(BANDS))]).astype(np.float32)


def _lut(toc: np.ndarray, bands=BANDS) -> MiniLUT:
    ones = np.ones((len(bands), ALT.size, AOT.size), np.float32)
    return MiniLUT(bands, ALT.astype(np.float32), AOT.astype(np.float32), TOA.astype(np.float32), toc,
                   ones, ones, ones, ones, 0.1 * ones)


LUT = _lut(_tables(1.0))  # date D
LTC_B01 = _tables(1.25)[0]  # previous date, other geometry, MT band B01


def toa_from_table(table: np.ndarray, surface, tau: float, h) -> np.ndarray:
    """TOA* whose TOC on `table` (trilinear, TOA* extrapolated) is `surface`: bisection on TOA*."""
    axes = tuple(np.asarray(a, np.float32).astype(np.float64) for a in (ALT, AOT, TOA))
    f = RegularGridInterpolator(axes, table.astype(np.float64), method="linear", bounds_error=False, fill_value=None)
    surface = np.asarray(surface, np.float64)
    h = np.broadcast_to(np.asarray(h, np.float64), surface.shape)
    lo, hi = np.full(surface.shape, -0.2), np.full(surface.shape, 1.1)

    def toc(x):
        pts = np.stack([h.ravel(), np.full(x.size, tau), x.ravel()], axis=1)
        return f(pts).reshape(x.shape)

    assert np.all(toc(lo) < surface) and np.all(toc(hi) > surface)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = toc(mid) < surface
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def scene(n=30, tau_d=0.25, tau_dm1=0.45, bias=0.01, dt=10, seed=0):
    """Unchanged surface observed at D (AOT tau_d, LUT) and at D - dt (tau_dm1, LTC table). The blue
    surface is 0.45 * red + bias: off the MS relation by `bias`; sparse vegetation (NDVI 0.3 .. 0.4, just
    above the MS selection threshold, so W_MS is small)."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.0, 1500.0, (n, n))
    red_s = rng.uniform(0.03, 0.08, (n, n))
    blue_s = PARAMS.ms_slope * red_s + bias
    f32 = np.float32
    toa = {
        "B01": toa_from_table(LUT.toc[0], blue_s, tau_d, h).astype(f32),
        "B04": toa_from_table(LUT.toc[1], red_s, tau_d, h).astype(f32),
        "B12": rng.uniform(0.1, 0.3, (n, n)).astype(f32),
    }
    rta = {"B01": toa_from_table(LTC_B01, blue_s, tau_dm1, h).astype(f32)}
    return {
        "toa": toa, "rta": rta, "rtc": blue_s.astype(f32), "pxd": np.full((n, n), DAY - dt, np.int32),
        "ndvi": rng.uniform(0.3, 0.4, (n, n)).astype(f32), "h": h.astype(f32), "blue_s": blue_s, "red_s": red_s,
    }


def run_st(s, mt_sel=None, ms_sel=None, ltc=None, ltc_days=None, aot_dark=math.inf, params=PARAMS, fn=None,
           lut=LUT):
    n = s["h"].shape
    mt_sel = np.ones(n, bool) if mt_sel is None else mt_sel
    ms_sel = np.ones(n, bool) if ms_sel is None else ms_sel
    if ltc is None:
        ltc, ltc_days = LTC_B01[None], [DAY - 10]
    fn = fn or aot_spectrotemporal_numpy
    return fn(s["toa"], s["rta"], s["rtc"], s["pxd"], mt_sel, ms_sel, s["ndvi"], s["h"], lut, ltc, ltc_days, DAY,
              aot_dark, params)


def run_ms(s, ms_sel=None, aot_dark=math.inf, params=PARAMS, lut=LUT):
    ms_sel = np.ones(s["h"].shape, bool) if ms_sel is None else ms_sel
    return aot_multispectral_numpy(s["toa"]["B01"], s["toa"]["B04"], s["ndvi"], s["h"], ms_sel, lut, aot_dark,
                                   params)


# --- the forward model of the tests is right ----------------------------------------------------------


def test_forward_by_lut_inversion_is_consistent_with_the_analytic_atmosphere():
    # the LUT is the analytic inverse at its nodes: at a node altitude the bisection finds the
    # analytic forward value up to the TOA* interpolation error of the table
    h = np.full(5, 500.0)
    surface = np.linspace(0.02, 0.3, 5)
    toa = toa_from_table(LUT.toc[0], surface, 0.25, h)
    np.testing.assert_allclose(_inverse(0, toa, 0.25, h, 1.0), surface, atol=2e-3)


# --- insensitive interval -------------------------------------------------------------------------------


def _linear_lut(k_of_h) -> MiniLUT:
    """TOC = r + k(h) * tau * (r - 0.25): multilinear in (h, tau, r), so interpolation is exact."""
    alt = np.array([0.0, 3000.0])
    aot = np.array([0.0, 0.5, 1.5])
    toa = np.array([-0.2, 0.5, 1.2])
    a, t, r = np.meshgrid(alt, aot, toa, indexing="ij")
    toc = (r + k_of_h(a) * t * (r - 0.25))[None].astype(np.float32)
    ones = np.ones((1, 2, 3), np.float32)
    return MiniLUT(("B01",), alt.astype(np.float32), aot.astype(np.float32), toa.astype(np.float32), toc,
                   ones, ones, ones, ones, ones)


def test_insensitive_interval_by_hand():
    lut = _linear_lut(lambda h: 0.6 + 0.6 * h / 3000.0)
    # |TOC(0) - TOC(0.4)| = 0.4 k |r - 0.25| < 0.01
    # h = 0: k = 0.6, |r - 0.25| < 0.041667 -> TOA* 0.21 .. 0.29
    lo, hi = aot_insensitive_interval(lut, "B01", 0.0, PARAMS)
    assert (lo, hi) == (pytest.approx(0.21), pytest.approx(0.29))
    # h = 1500: k = 0.9, |r - 0.25| < 0.027778 -> 0.23 .. 0.27
    lo, hi = aot_insensitive_interval(lut, "B01", 1500.0, PARAMS)
    assert (lo, hi) == (pytest.approx(0.23), pytest.approx(0.27))
    # altitude beyond the axis is clamped (k = 1.2 at 3000 m: |r - 0.25| < 0.0208 -> 0.23 .. 0.27)
    assert aot_insensitive_interval(lut, "B01", 9000.0, PARAMS) == aot_insensitive_interval(lut, "B01", 3000.0,
                                                                                            PARAMS)
    # a looser threshold widens it: 0.4 * 0.6 * |r - 0.25| < 0.05 -> |r - 0.25| < 0.2083 -> 0.05 .. 0.45
    lo, hi = aot_insensitive_interval(lut, "B01", 0.0, PARAMS.replace(toc_insensitive_threshold=0.05))
    assert (lo, hi) == (pytest.approx(0.05), pytest.approx(0.45))


def test_insensitive_interval_none_and_non_contiguous():
    # sensitive everywhere: TOC = r - tau (difference 0.4 at every TOA*)
    alt, aot = np.array([0.0, 1000.0]), np.array([0.0, 1.0])
    toa = np.round(np.arange(101) * 0.01, 2)
    _, t, r = np.meshgrid(alt, aot, toa, indexing="ij")
    ones = np.ones((1, 2, 2), np.float32)

    def lut_of(toc):
        return MiniLUT(("B01",), alt.astype(np.float32), aot.astype(np.float32), toa.astype(np.float32),
                       toc[None].astype(np.float32), ones, ones, ones, ones, ones)

    lo, hi = aot_insensitive_interval(lut_of(r - t), "B01", 0.0, PARAMS)
    assert math.isnan(lo) and math.isnan(hi)
    # insensitive only at TOA* 0.10, 0.11 and 0.50 (two separate pieces): the envelope 0.10 .. 0.50
    g = np.ones_like(toa)
    g[[10, 11, 50]] = 0.0
    lo, hi = aot_insensitive_interval(lut_of(r - t * g[None, None, :]), "B01", 500.0, PARAMS)
    assert (lo, hi) == (pytest.approx(0.10), pytest.approx(0.50))
    with pytest.raises(KeyError, match="B02"):
        aot_insensitive_interval(lut_of(r - t), "B02", 0.0, PARAMS)


# --- MT selection ---------------------------------------------------------------------------------------


def test_mt_selection_conditions_one_by_one():
    # columns: ok | excluded | age 60 (not < 60) | age 59 ok | var 0.1 relative | var 0.075 exactly |
    #          TOA* inside [0.2, 0.3] | TOA* = 0.2 (the bound: inside) | NaN var | sum 0
    toa_var = np.array([[0.30, 0.30, 0.30, 0.30, 0.33, 0.30, 0.30, 0.30, np.nan, 0.0]], np.float32)
    rta_var = np.array([[0.30, 0.30, 0.30, 0.30, 0.27, 0.0, 0.30, 0.30, 0.30, 0.0]], np.float32)
    rta_var[0, 5] = 0.30 * (1 - 0.075) / (1 + 0.075) * (1 + 1e-5)  # relative difference just below 0.075
    age = np.array([[10, 10, 60, 59, 10, 10, 10, 10, 10, 10]])
    toa_mt = np.array([[0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.25, 0.20, 0.10, 0.10]], np.float32)
    excluded = np.zeros(toa_var.shape, bool)
    excluded[0, 1] = True
    sel = mt_selection(toa_var, rta_var, age, toa_mt, 0.2, 0.3, excluded, PARAMS)
    assert sel.dtype == bool
    assert sel.tolist() == [[True, False, False, True, False, True, False, False, False, False]]
    # |0.33 - 0.27| / 0.6 = 0.1 > 0.075; with a looser relative_var_max it passes
    assert mt_selection(toa_var, rta_var, age, toa_mt, 0.2, 0.3, excluded,
                        PARAMS.replace(relative_var_max=0.11))[0, 4]
    # no insensitive interval (NaN): TOA* 0.25 and 0.20 pass
    sel = mt_selection(toa_var, rta_var, age, toa_mt, math.nan, math.nan, None, PARAMS)
    assert sel.tolist() == [[True, True, False, True, False, True, True, True, False, False]]
    # above the interval also passes
    assert mt_selection(toa_var[:, :1], rta_var[:, :1], age[:, :1], np.array([[0.31]], np.float32), 0.2, 0.3,
                        None, PARAMS)[0, 0]
    with pytest.raises(InputError, match="excluded"):
        mt_selection(toa_var, rta_var, age, toa_mt, 0.2, 0.3, np.zeros((2, 2), bool), PARAMS)


# --- LPD and weights --------------------------------------------------------------------------------------


def test_local_previous_date_is_the_mode():
    dates = np.array([
        [5, 5, 7, 7, 7, 0],  # 7 three times
        [5, 5, 7, 7, 3, 0],  # tie 5 / 7: 7 is closer to day 10
        [5, 5, 15, 15, 3, 0],  # tie 5 / 15 at distance 5 from day 10: the later one
        [5, 9, 9, 9, 9, 9],  # the 9s are not valid: 5
        [1, 2, 3, 4, 5, 6],  # nothing valid
    ])
    valid = np.ones(dates.shape, bool)
    valid[:, 5] = False
    valid[3, 1:] = False
    valid[4] = False
    assert local_previous_date(dates, valid, 10).tolist() == [7, 7, 15, 5, PXD_NODATA]
    assert local_previous_date(dates[1:2], valid[1:2], 0).tolist() == [5]  # tie: 5 is closer to day 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=49), st.integers(-5, 10), st.randoms(use_true_random=False))
def test_local_previous_date_is_a_mode_and_order_free(values, day, rnd):
    dates = np.array([values])
    lpd = int(local_previous_date(dates, np.ones(dates.shape, bool), day)[0])
    counts = Counter(values)
    assert counts[lpd] == max(counts.values())
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert local_previous_date(np.array([shuffled]), np.ones(dates.shape, bool), day)[0] == lpd


def test_pxd_nodata_is_the_composite_one():
    from gpumaja.composite import PXD_NODATA as COMPOSITE_NODATA

    assert PXD_NODATA == COMPOSITE_NODATA


def test_weights_by_hand():
    p = PARAMS  # std_noise 0.001, threshold 10, W_eq2 2, A 1200, B 800
    w1, w2, valid = mt_weights(np.array([0.004] * 3), np.array([0.05] * 3), np.array([0.0, 20.0, 40.0]), p)
    np.testing.assert_allclose(w2, [3.0, 2.0, 1.0])  # 2 x (1.5, 1, 0.5)
    np.testing.assert_allclose(w1, [6.0, 4.0, 2.0])  # 4 x (1.5, 1, 0.5)
    assert valid.all()
    w1, w2, valid = mt_weights(np.array([-0.05] * 3), np.array([0.05] * 3), np.array([0.0, 20.0, -40.0]), p)
    np.testing.assert_allclose(w1, [15.0, 10.0, 5.0])  # |-50| capped at 10, then the factor
    _, _, valid = mt_weights(0.004, np.array([0.02, 0.0201]), 0.0, p)
    assert valid.tolist() == [False, True]  # std must exceed stdev_min = 0.02


# --- inversion --------------------------------------------------------------------------------------------


# scene() puts the blue surface 0.01 off the MS relation, so the MS equations pull tau_D away from the truth
# and the MT equations pull it back. In TOA units (the default) the MT residuals are multiplied by the date's
# transmission (~0.87 in this atmosphere), so they weigh ~0.75 times as much against the MS ones as in MAJA's
# surface units: the estimate sits a little further from the truth (0.0108 vs 0.0084 at worst).
ST_ATOL = {"surface": 0.01, "toa": 0.012}


@pytest.mark.parametrize("units", ["surface", "toa"])
def test_st_recovers_tau_where_ms_alone_is_biased(units):
    s = scene()
    aot, n_used, method = run_st(s, params=PARAMS.replace(mt_residual_units=units))
    assert aot.shape == (10, 10) and aot.dtype == np.float32 and n_used.dtype == np.int32
    assert method.dtype == np.int8 and np.all(method == 2)
    np.testing.assert_allclose(aot, 0.25, atol=ST_ATOL[units])
    assert np.all(n_used == 98)  # 49 MS + 49 MT samples at the first interval
    ms_aot, _ = run_ms(s)
    assert np.all(np.abs(ms_aot - 0.25) > 0.03)  # the surface is off the MS relation


def test_mt_only_recovers_tau_and_uses_the_nearest_ltc():
    s = scene(tau_d=0.4, tau_dm1=0.15, dt=30, seed=1)
    none = np.zeros(s["h"].shape, bool)
    aot, n_used, method = run_st(s, ms_sel=none, ltc=np.stack([LUT.toc[0], LTC_B01]),
                                 ltc_days=[DAY - 5, DAY - 30])
    assert np.all(method == 2) and np.all(n_used == 49)
    np.testing.assert_allclose(aot, 0.4, atol=0.01)
    # the LPD (DAY - 30) has no stored table: the nearest one (DAY - 29) is used
    aot2, _, method2 = run_st(s, ms_sel=none, ltc=np.stack([LUT.toc[0], LTC_B01]), ltc_days=[DAY - 5, DAY - 29])
    np.testing.assert_array_equal(aot2, aot)
    assert np.all(method2 == 2)
    # which table is read: a constant table (surface 0.9 whatever the TOA*) dated DAY - 5 is ignored ...
    flat = np.full(LTC_B01.shape, 0.9, np.float32)
    aot3, _, _ = run_st(s, ms_sel=none, ltc=np.stack([flat, LTC_B01]), ltc_days=[DAY - 5, DAY - 30])
    np.testing.assert_array_equal(aot3, aot)
    # ... but used when it is the nearest to the LPD: eq. 1 then pulls tau_D far away
    aot4, _, _ = run_st(s, ms_sel=none, ltc=np.stack([flat, LTC_B01]), ltc_days=[DAY - 31, DAY - 5])
    assert np.abs(aot4 - 0.4).min() > 0.1


def test_only_samples_of_the_lpd_enter_the_mt_equations():
    s = scene(seed=2)
    rng = np.random.default_rng(3)
    old = rng.random(s["h"].shape) < 0.25  # 25 % of the pixels date from DAY - 40 ...
    s["pxd"] = np.where(old, DAY - 40, DAY - 10).astype(np.int32)
    s["rtc"] = np.where(old, s["rtc"] + 0.05, s["rtc"]).astype(np.float32)  # ... with a different surface
    none = np.zeros(s["h"].shape, bool)
    aot, n_used, method = run_st(s, ms_sel=none)
    assert np.all(method == 2)
    np.testing.assert_allclose(aot, 0.25, atol=0.01)
    # n_used: the DAY - 10 samples of the 7x7 window at interval 2 (the mode everywhere here)
    ny = aot_node_positions(30, 3)
    for j, y in enumerate(ny):
        for i, x in enumerate(ny):
            ys = np.clip(y + 2 * np.arange(-3, 4), 0, 29)
            xs = np.clip(x + 2 * np.arange(-3, 4), 0, 29)
            count = int((~old[np.ix_(ys, xs)]).sum())
            assert count > 49 - count  # DAY - 10 is the mode
            assert n_used[j, i] == count


def test_fallback_to_ms_without_composite():
    s = scene(seed=4)
    ms_aot, ms_n = run_ms(s)
    none = np.zeros(s["h"].shape, bool)
    for kwargs in ({"mt_sel": none}, {"ltc": np.zeros((0,) + LTC_B01.shape, np.float32), "ltc_days": []}):
        aot, n_used, method = run_st(s, **kwargs)
        assert np.all(method == 1)
        # the same inversion; only the order of the float64 sums may differ (sequential vs pairwise)
        np.testing.assert_allclose(aot, ms_aot, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(n_used, ms_n)
    # with a dark bound as well
    aot, _, _ = run_st(s, mt_sel=none, aot_dark=0.2)
    np.testing.assert_allclose(aot, run_ms(s, aot_dark=0.2)[0], rtol=0, atol=1e-6)
    # stdev band flat: W1 invalid -> MT invalid -> MS
    s["toa"]["B12"] = np.full(s["h"].shape, 0.2, np.float32)
    aot, _, method = run_st(s)
    assert np.all(method == 1)
    np.testing.assert_allclose(aot, ms_aot, rtol=0, atol=1e-6)


@pytest.mark.parametrize("units", ["surface", "toa"])
def test_mixed_nodes_and_nothing(units):
    params = PARAMS.replace(mt_residual_units=units)
    s = scene(seed=5, n=60)
    mt_sel = np.zeros(s["h"].shape, bool)
    mt_sel[:, :20] = True  # composite only on the left
    ms_sel = np.ones(s["h"].shape, bool)
    ms_sel[30:, 30:] = False
    mt_sel[30:, 30:] = False  # nothing at all in the bottom-right corner
    aot, n_used, method = run_st(s, mt_sel=mt_sel, ms_sel=ms_sel, params=params)
    nx = aot_node_positions(60, 3)
    assert np.all(method[:, nx < 20] == 2)
    inside = nx + PARAMS.half_window_size * PARAMS.sampling_interval_min < 20  # the whole window has MT
    np.testing.assert_allclose(aot[:, inside], 0.25, atol=ST_ATOL[units])
    reach = PARAMS.half_window_size * PARAMS.sampling_interval_max
    far = nx - reach >= 20
    ms_aot, _ = run_ms(s, ms_sel=ms_sel, params=params)
    right = method[:, far] == 1
    assert right.sum() > 0
    np.testing.assert_allclose(aot[:, far][right], ms_aot[:, far][right], rtol=0, atol=1e-6)
    corner = (nx[:, None] - reach >= 30) & (nx[None, :] - reach >= 30)
    assert corner.any()
    assert np.all(method[corner] == 0) and np.all(np.isnan(aot[corner])) and np.all(n_used[corner] == 0)


def _brute_method(s, mt_sel, ms_sel, params=PARAMS):
    """method and n_used by plain loops over the documented rule (MAJA's interval loop)."""
    cy, cx = s["h"].shape
    step, hw = params.step_aot, params.half_window_size
    ys_n, xs_n = aot_node_positions(cy, step), aot_node_positions(cx, step)
    intervals = list(range(params.sampling_interval_min, params.sampling_interval_max + 1,
                           params.increment_n_distance))
    method = np.zeros((ys_n.size, xs_n.size), np.int8)
    used = np.zeros((ys_n.size, xs_n.size), np.int32)
    for j, y0 in enumerate(ys_n):
        for i, x0 in enumerate(xs_n):
            ms_n = mt_n = None
            for interval in intervals:
                pts = [(min(max(y0 + a * interval, 0), cy - 1), min(max(x0 + b * interval, 0), cx - 1))
                       for a in range(-hw, hw + 1) for b in range(-hw, hw + 1)]
                if ms_n is None:
                    c = sum(bool(ms_sel[p]) for p in pts)
                    ms_n = c if c >= params.n_pix_min else None
                if mt_n is None:
                    mt_pts = [p for p in pts if mt_sel[p]]
                    if mt_pts:
                        counts = Counter(int(s["pxd"][p]) for p in mt_pts)
                        lpd = max(counts, key=lambda d: (counts[d], -abs(DAY - d), d))
                        lp = [p for p in mt_pts if s["pxd"][p] == lpd]
                        if len(lp) >= params.n_pix_min and statistics.stdev(
                                float(s["toa"]["B12"][p]) for p in lp) > params.stdev_min:
                            mt_n = len(lp)
                last = interval == intervals[-1]
                if (ms_n and mt_n) or (last and (ms_n or mt_n)):
                    method[j, i] = 2 if mt_n else 1
                    used[j, i] = (ms_n or 0) + (mt_n or 0)
                    break
    return method, used


def test_interval_logic_matches_brute_force():
    s = scene(seed=6, n=45)
    rng = np.random.default_rng(7)
    shape = s["h"].shape
    ms_sel = rng.random(shape) < 0.3
    ms_sel[:, 30:] = False
    mt_sel = rng.random(shape) < 0.6
    mt_sel[25:, :] &= rng.random((20, 45)) < 0.3
    s["pxd"] = rng.choice([DAY - 10, DAY - 20, DAY - 30], size=shape, p=[0.5, 0.3, 0.2]).astype(np.int32)
    s["toa"]["B12"][:10, :10] = 0.2  # no TOA* variability: W1 invalid there
    ltc = np.stack([LTC_B01] * 3)
    aot, n_used, method = run_st(s, mt_sel=mt_sel, ms_sel=ms_sel, ltc=ltc, ltc_days=[DAY - 10, DAY - 20, DAY - 30])
    exp_method, exp_used = _brute_method(s, mt_sel, ms_sel)
    assert set(np.unique(exp_method)) == {0, 1, 2}
    np.testing.assert_array_equal(method, exp_method)
    np.testing.assert_array_equal(n_used, exp_used)
    np.testing.assert_array_equal(np.isnan(aot), exp_method == 0)


def test_nan_inputs_and_nodata_dates_are_never_used():
    s = scene(seed=8)
    s["rta"]["B01"][3:6, 3:6] = np.nan
    s["pxd"][10:12, 10:12] = PXD_NODATA
    s["rtc"][20, 20] = np.nan
    none = np.zeros(s["h"].shape, bool)
    aot, n_used, method = run_st(s, ms_sel=none)
    assert np.all(method == 2) and np.all(np.isfinite(aot))
    np.testing.assert_allclose(aot, 0.25, atol=0.01)
    assert n_used.min() < 49


# --- MT residual units (L2Params.mt_residual_units): a surface that changes between the dates ------------


def scene_changed(n=30, tau_d=0.3, tau_dm1=0.2, sigma=0.01, dt=10, seed=20):
    """The composite holds the surface of D - dt (RTC exact, RTA its TOA* on the LTC table at tau_dm1); at D
    the surface has changed by a known random amount (normal, std `sigma`) and is seen at tau_d on the
    date's table. Blue-band contrast 0.02 .. 0.12; the red band and NDVI only feed the (unused) MS terms."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.0, 1500.0, (n, n))
    blue_prev = rng.uniform(0.02, 0.12, (n, n))
    blue_now = blue_prev + rng.normal(0.0, sigma, (n, n))
    red_s = rng.uniform(0.03, 0.08, (n, n))
    f32 = np.float32
    toa = {
        "B01": toa_from_table(LUT.toc[0], blue_now, tau_d, h).astype(f32),
        "B04": toa_from_table(LUT.toc[1], red_s, tau_d, h).astype(f32),
        "B12": rng.uniform(0.1, 0.3, (n, n)).astype(f32),
    }
    rta = {"B01": toa_from_table(LTC_B01, blue_prev, tau_dm1, h).astype(f32)}
    return {"toa": toa, "rta": rta, "rtc": blue_prev.astype(f32), "pxd": np.full((n, n), DAY - dt, np.int32),
            "ndvi": rng.uniform(0.3, 0.4, (n, n)).astype(f32), "h": h.astype(f32)}


def test_toa_units_remove_the_low_bias_of_surface_change():
    """MAJA's equation 1 in surface units rewards lowering both AOTs: the real surface change between the dates
    is seen through a larger transmission and its scatter shrinks. Multiplied by the transmission (TOA units),
    that scatter no longer depends on the trial AOT and the estimate is unbiased."""
    none = np.zeros((30, 30), bool)  # MT equations only (MS off): the bias is theirs
    surface, toa = (PARAMS.replace(mt_residual_units=u) for u in ("surface", "toa"))
    # no change: both costs are zero at the truth
    still = scene_changed(sigma=0.0)
    for params in (surface, toa):
        aot, _, method = run_st(still, ms_sel=none, params=params)
        assert np.all(method == 2)
        np.testing.assert_allclose(aot, 0.3, atol=2e-3)
    # the blue surface changes by 0.01 (std) between the dates; three scenes
    err_s, err_t = [], []
    for seed in (20, 21, 22):
        moved = scene_changed(seed=seed)
        # W1 at its cap, as on the real series: |mean TOA* difference| / std_noise > 10 (the geometry of
        # the two dates differs, as the winter sun zenith does)
        assert abs(float(np.mean(moved["toa"]["B01"].astype(float) - moved["rta"]["B01"]))) > 0.01
        aot_s, _, method_s = run_st(moved, ms_sel=none, params=surface)
        aot_t, _, method_t = run_st(moved, ms_sel=none, params=toa)
        assert np.all(method_s == 2) and np.all(method_t == 2)
        err_s.append(aot_s.ravel() - 0.3)
        err_t.append(aot_t.ravel() - 0.3)
        # surface units: biased low by ~0.03 in every scene; TOA units: the scene's noise only (each node
        # sees 49 changed samples: ~0.012 rms, a scene mean within ~0.005)
        assert np.mean(err_s[-1]) < -0.02
        assert abs(np.mean(err_t[-1])) < 0.006
    err_s, err_t = np.concatenate(err_s), np.concatenate(err_t)
    assert np.mean(err_s) < -0.025 and np.median(err_s) < -0.025
    assert abs(np.mean(err_t)) < 0.003 and abs(np.median(err_t)) < 0.003
    assert np.sqrt(np.mean(err_t**2)) < 0.5 * np.sqrt(np.mean(err_s**2))


def _fd_toa_slope(table, h, tau, toa, eps=1e-6):
    """dTOC/dTOA* of the trilinear interpolation of `table` by a central difference (scipy, float64)."""
    axes = tuple(np.asarray(a, np.float32).astype(np.float64) for a in (ALT, AOT, TOA))
    f = RegularGridInterpolator(axes, table.astype(np.float64), method="linear", bounds_error=False, fill_value=None)

    def pts(x):
        return np.stack([h, np.full(h.size, tau), x], axis=1)

    return (f(pts(toa + eps)) - f(pts(toa - eps))) / (2 * eps)


def test_toa_slope_profile_is_the_table_slope_and_the_transmission():
    from gpumaja.atmosphere.aot_st import _toa_slope_profile

    rng = np.random.default_rng(30)
    h = rng.uniform(0.0, 3000.0, 200)
    toa = rng.uniform(0.05, 0.4, 200)
    toa = np.where(np.abs(toa / 0.02 - np.round(toa / 0.02)) < 1e-3, toa + 0.005, toa)  # off the TOA* nodes
    q = _toa_slope_profile(LUT.toc[0], LUT, h, toa)
    assert q.shape == (200, AOT.size)
    for k in (0, 4, 24):
        np.testing.assert_allclose(q[:, k], _fd_toa_slope(LUT.toc[0], h, float(np.float32(AOT[k])), toa), rtol=1e-6)
    # 1 / slope is the transmission d(TOA*)/d(rho_s) of the analytic atmosphere, t / (1 - s rho_s)^2 (up to the
    # table's interpolation error)
    tau = 0.25
    te = tau * np.exp(-h / 2000.0)
    t, sph = np.exp(-TX[0] * te - 0.1 * np.exp(-h / 8000.0)), 0.12 + 0.06 * te
    rho = _inverse(0, toa, tau, h, 1.0)
    k = 4  # AOT[4] = 0.25
    np.testing.assert_allclose(1.0 / q[:, k], t / (1.0 - sph * rho) ** 2, rtol=0.02)


@pytest.mark.parametrize("units", ["surface", "toa"])
def test_lm_minimises_the_documented_cost(units):
    """One node, MT only: the LM result is the minimum of the cost written out here, with scipy's
    interpolation and a derivative-free minimiser (W1, W2 by hand; u = 1 or 1 / (dTOC/dTOA*))."""
    from scipy.optimize import minimize

    s = scene_changed(sigma=0.02, seed=21)
    none = np.zeros((30, 30), bool)
    params = PARAMS.replace(mt_residual_units=units)
    aot, _, _ = run_st(s, ms_sel=none, params=params)
    # node (5, 5) is at pixel (16, 16); its MT samples: the 7x7 window at interval 2 (all selected, one PXD)
    ys = 16 + 2 * np.arange(-3, 4)
    ix = np.ix_(ys, ys)
    h = s["h"][ix].astype(float).ravel()
    toa_d = s["toa"]["B01"][ix].astype(float).ravel()
    rta = s["rta"]["B01"][ix].astype(float).ravel()
    rtc = s["rtc"][ix].astype(float).ravel()
    f = 1200.0 / (10.0**2 + 800.0)
    w1 = min(abs(np.mean(toa_d - rta)) / 0.001, 10.0) * f
    w2 = 2.0 * f
    axes = tuple(np.asarray(a, np.float32).astype(np.float64) for a in (ALT, AOT, TOA))
    f_d = RegularGridInterpolator(axes, LUT.toc[0].astype(np.float64))
    f_l = RegularGridInterpolator(axes, LTC_B01.astype(np.float64))

    def cost(x):
        t0, t1 = x
        rho_d = f_d(np.stack([h, np.full(h.size, t0), toa_d], axis=1))
        rho_l = f_l(np.stack([h, np.full(h.size, t1), rta], axis=1))
        u = 1.0 if units == "surface" else 1.0 / _fd_toa_slope(LUT.toc[0], h, t0, toa_d)
        return float(np.sum((w1 * u * (rho_d - rho_l)) ** 2 + (w2 * u * (rho_d - rtc)) ** 2))

    best = minimize(cost, [0.3, 0.2], method="Nelder-Mead", bounds=[(0.02, 1.4), (0.02, 1.4)],
                    options={"xatol": 1e-7, "fatol": 1e-14, "maxiter": 4000})
    assert best.success
    assert abs(float(aot[5, 5]) - best.x[0]) < 2e-4  # (without du/dtau_D in the Jacobian: 0.160 vs 0.321)


def test_unknown_residual_units_are_rejected():
    with pytest.raises(ValueError, match="mt_residual_units"):  # by L2Params itself, before any work
        PARAMS.replace(mt_residual_units="TOA")
    bad = PARAMS.replace()
    object.__setattr__(bad, "mt_residual_units", "TOA")  # past the dataclass check: the twin checks too
    with pytest.raises(InputError, match="mt_residual_units"):
        run_st(scene(n=9), params=bad)


def test_dispatch_and_validation():
    s = scene(n=9)
    a_np = run_st(s)
    a_cpu = run_st(s, fn=lambda *a: aot_spectrotemporal(*a, backend=CPU))
    for x, y in zip(a_np, a_cpu):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(InputError, match="B12"):
        run_st({**s, "toa": {k: v for k, v in s["toa"].items() if k != "B12"}})
    with pytest.raises(InputError, match="rta"):
        run_st({**s, "rta": {}})
    with pytest.raises(InputError, match="ltc_tables"):
        run_st(s, ltc=LTC_B01[None, :, :3], ltc_days=[DAY])
    with pytest.raises(InputError, match="ltc_days"):
        run_st(s, ltc=LTC_B01[None], ltc_days=[DAY, DAY - 1])
    with pytest.raises(InputError, match="shape"):
        run_st({**s, "rtc": s["rtc"][:5]})
    with pytest.raises(KeyError, match="B02"):  # in toa_star but not in the mini-LUT
        run_st({**s, "toa": {**s["toa"], "B02": s["toa"]["B04"]}}, params=PARAMS.replace(red_band="B02"))


# --- AOT over relief (aot_height_scale_m): LUTs whose AOT axis is the column above the pixel ------------------
# (6S, MAJA's GIPP). scene() has the column AOT τ·exp(−h/2000) on both dates (sea-level τ_D 0.25 and
# τ_{D−1} 0.45), so on these LUTs the height factor must find the sea-level values.

HEIGHT_PARAMS = PARAMS.replace(aot_height_scale_m=2000.0)


def _column_tables(geom: float) -> np.ndarray:
    a, k, r = np.meshgrid(ALT, AOT, TOA, indexing="ij")
    return np.stack([_inverse(b, r, k * np.exp(a / 2000.0), a, geom) for b in range(len(BANDS))]).astype(np.float32)


LUT_COLUMN = _lut(_column_tables(1.0))
LTC_COLUMN_B01 = _column_tables(1.25)[0]


@pytest.mark.parametrize("units", ["surface", "toa"])
def test_st_height_factor_recovers_the_sea_level_aot(units):
    s = scene()
    params = HEIGHT_PARAMS.replace(mt_residual_units=units)
    aot, _, method = run_st(s, ltc=LTC_COLUMN_B01[None], ltc_days=[DAY - 10], params=params, lut=LUT_COLUMN)
    assert np.all(method == 2)
    np.testing.assert_allclose(aot, 0.25, atol=ST_ATOL[units] + 0.005)  # + the column LUT's AOT interpolation
    # MAJA's one τ per window reads a column of the window's altitudes (0..1500 m): well below 0.25
    one_tau, _, _ = run_st(s, ltc=LTC_COLUMN_B01[None], ltc_days=[DAY - 10],
                           params=params.replace(aot_height_scale_m=0.0), lut=LUT_COLUMN)
    assert np.all(one_tau < 0.22)
    # a node without MT is the MS twin's, height factor included
    none = np.zeros(s["h"].shape, bool)
    ms_only, _, m = run_st(s, mt_sel=none, ltc=LTC_COLUMN_B01[None], ltc_days=[DAY - 10], params=params,
                           lut=LUT_COLUMN)
    assert np.all(m == 1)
    np.testing.assert_allclose(ms_only, run_ms(s, params=params, lut=LUT_COLUMN)[0], rtol=0, atol=1e-6)


# --- GPU kernel vs NumPy twin -------------------------------------------------------------------------------


def _compare_gpu(s, mt_sel, ms_sel, ltc, ltc_days, aot_dark, params=PARAMS, lut=LUT):
    import cupy

    ref = run_st(s, mt_sel=mt_sel, ms_sel=ms_sel, ltc=ltc, ltc_days=ltc_days, aot_dark=aot_dark, params=params,
                 lut=lut)
    g = {k: (cupy.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in s.items()}
    g["toa"] = {k: cupy.asarray(v) for k, v in s["toa"].items()}
    g["rta"] = {k: cupy.asarray(v) for k, v in s["rta"].items()}
    out = run_st(g, mt_sel=cupy.asarray(mt_sel), ms_sel=cupy.asarray(ms_sel), ltc=ltc, ltc_days=ltc_days,
                 aot_dark=aot_dark, params=params, fn=aot_spectrotemporal, lut=lut)
    aot, n_used, method = out
    assert isinstance(aot, cupy.ndarray) and aot.dtype == cupy.float32
    assert n_used.dtype == cupy.int32 and method.dtype == cupy.int8
    np.testing.assert_array_equal(method.get(), ref[2])
    np.testing.assert_array_equal(n_used.get(), ref[1])
    np.testing.assert_allclose(aot.get(), ref[0], atol=1e-5, equal_nan=True)


@pytest.mark.gpu
@pytest.mark.parametrize("units", ["surface", "toa"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gpu_matches_numpy_random(seed, units):
    rng = np.random.default_rng(100 + seed)
    n = 64
    f32 = np.float32
    s = {
        "toa": {b: rng.uniform(-0.05, 0.5, (n, n)).astype(f32) for b in ("B01", "B04")},
        "rta": {"B01": rng.uniform(-0.05, 0.5, (n, n)).astype(f32)},
        "rtc": rng.uniform(-0.05, 0.4, (n, n)).astype(f32),
        "pxd": rng.choice([DAY - 3, DAY - 17, DAY - 50, PXD_NODATA], size=(n, n)).astype(np.int32),
        "ndvi": rng.uniform(-0.5, 1.0, (n, n)).astype(f32),
        "h": rng.uniform(-100, 3500, (n, n)).astype(f32),
    }
    s["toa"]["B12"] = rng.uniform(0.0, 0.2 * seed, (n, n)).astype(f32)  # seed 0: W1 never valid
    mt_sel = rng.random((n, n)) < rng.uniform(0.2, 0.9)
    ms_sel = rng.random((n, n)) < rng.uniform(0.05, 0.9)
    ltc = np.stack([LTC_B01, LUT.toc[0]])
    _compare_gpu(s, mt_sel, ms_sel, ltc, [DAY - 17, DAY - 40], aot_dark=[0.2, math.inf, 0.05][seed],
                 params=PARAMS.replace(mt_residual_units=units))


@pytest.mark.gpu
@pytest.mark.parametrize("units", ["surface", "toa"])
def test_gpu_matches_numpy_with_height_factor(units):
    """Per-sample AOT cells (s_p·τ_D, s_p·τ_{D−1}): a column-LUT scene at 0..1500 m, then random pixels."""
    params = HEIGHT_PARAMS.replace(mt_residual_units=units)
    s = scene(n=90, seed=7)
    shape = s["h"].shape
    rng = np.random.default_rng(8)
    ms_sel = rng.random(shape) < 0.7
    mt_sel = rng.random(shape) < 0.8
    _compare_gpu(s, mt_sel, ms_sel, LTC_COLUMN_B01[None], [DAY - 10], aot_dark=0.4, params=params, lut=LUT_COLUMN)
    s["h"] = rng.uniform(-100, 3500, shape).astype(np.float32)
    _compare_gpu(s, mt_sel, ms_sel, LTC_COLUMN_B01[None], [DAY - 10], aot_dark=math.inf, params=params,
                 lut=LUT_COLUMN)


@pytest.mark.gpu
def test_gpu_matches_numpy_realistic():
    s = scene(n=459, seed=11)  # a full S2 tile: 153 x 153 nodes
    rng = np.random.default_rng(12)
    shape = s["h"].shape
    ms_sel = rng.random(shape) < 0.7
    mt_sel = rng.random(shape) < 0.8
    mt_sel[100:250, 50:300] = ms_sel[100:250, 50:300] = False  # a cloud
    mt_sel[300:, :150] = False  # no composite there
    s["pxd"] = np.where(rng.random(shape) < 0.3, DAY - 25, DAY - 10).astype(np.int32)
    ltc = np.stack([LTC_B01, LTC_B01])
    _compare_gpu(s, mt_sel, ms_sel, ltc, [DAY - 10, DAY - 25], aot_dark=0.3)
    _compare_gpu(s, mt_sel, ms_sel, ltc, [DAY - 10, DAY - 25], aot_dark=math.inf,
                 params=PARAMS.replace(n_pix_min=40))
    _compare_gpu(s, np.zeros(shape, bool), ms_sel, ltc, [DAY - 10, DAY - 25], aot_dark=0.3)
    _compare_gpu(s, mt_sel, ms_sel, ltc, [DAY - 10, DAY - 25], aot_dark=0.3,
                 params=PARAMS.replace(mt_residual_units="surface"))


@pytest.mark.gpu
@pytest.mark.parametrize("units", ["surface", "toa"])
def test_gpu_matches_numpy_surface_change(units):
    s = scene_changed(n=60, sigma=0.02, seed=22)
    shape = s["h"].shape
    _compare_gpu(s, np.ones(shape, bool), np.zeros(shape, bool), LTC_B01[None], [DAY - 10], aot_dark=math.inf,
                 params=PARAMS.replace(mt_residual_units=units))


@pytest.mark.gpu
def test_gpu_mt_selection_matches_numpy():
    import cupy

    rng = np.random.default_rng(14)
    shape = (50, 60)
    tv = rng.uniform(0.0, 0.5, shape).astype(np.float32)
    rv = (tv * rng.uniform(0.8, 1.2, shape)).astype(np.float32)
    age = rng.integers(0, 100, shape)
    mt = rng.uniform(0.0, 0.5, shape).astype(np.float32)
    ex = rng.random(shape) < 0.2
    ref = mt_selection(tv, rv, age, mt, 0.15, 0.25, ex, PARAMS)
    out = mt_selection(*(cupy.asarray(a) for a in (tv, rv, age, mt)), 0.15, 0.25, cupy.asarray(ex), PARAMS, xp=cupy)
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_array_equal(out.get(), ref)

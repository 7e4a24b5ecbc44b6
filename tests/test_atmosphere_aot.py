"""AOT, INIT mode (maja-l2a.md §3.5): dark pixel, MS selection, MS inversion (kernel + NumPy twin),
gap filling / smoothing and resampling to the coarse grid.

The mini-LUT is built here from a simple analytic atmosphere, per band b:

    rho* = P_b(tau, h) + T_b(tau, h) * rho_s / (1 - S(tau, h) * rho_s)

whose exact inverse gives the TOC table at the LUT nodes. Vegetation pixels are generated with true
surface reflectances obeying the MS relation blue = 0.45 * red exactly at a known tau, so the inversion
must find that tau (up to the LUT's interpolation error).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.atmosphere.aot import (
    aot_at_altitude,
    aot_multispectral,
    aot_multispectral_numpy,
    aot_node_positions,
    aot_to_grid,
    dark_pixel_aot,
    fill_and_smooth_aot,
    height_factor,
    ms_selection,
)
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.backend import CPU
from gpumaja.errors import InputError
from gpumaja.model.params import L2Params

# --- synthetic atmosphere -------------------------------------------------------------------------

BANDS = ("B01", "B04")
P0 = np.array([0.10, 0.04])  # molecular path reflectance at sea level
P1 = np.array([0.20, 0.09])  # aerosol path reflectance per unit AOT
TX = np.array([0.35, 0.20])  # aerosol extinction in the two-way transmission


def _atm(b, tau, h):
    te = tau * np.exp(-h / 2000.0)
    r = np.exp(-h / 8000.0)
    return P0[b] * r + P1[b] * te, np.exp(-TX[b] * te - 0.1 * r), 0.12 + 0.06 * te


def forward(b, rho_s, tau, h):
    p, t, s = _atm(b, tau, h)
    return p + t * rho_s / (1.0 - s * rho_s)


def inverse(b, toa, tau, h):
    p, t, s = _atm(b, tau, h)
    y = toa - p
    return y / (t + s * y)


ALT = np.arange(0.0, 3001.0, 250.0)
AOT = np.arange(25) * 0.0625  # 0 .. 1.5, as the MAJA GIPP
TOA = np.arange(-0.2, 1.2001, 0.02)


def make_lut() -> MiniLUT:
    a, k, r = np.meshgrid(ALT, AOT, TOA, indexing="ij")
    toc = np.stack([inverse(b, r, k, a) for b in range(len(BANDS))]).astype(np.float32)
    ones = np.ones((len(BANDS), ALT.size, AOT.size), np.float32)
    return MiniLUT(BANDS, ALT.astype(np.float32), AOT.astype(np.float32), TOA.astype(np.float32), toc,
                   ones, ones, ones, ones, 0.1 * ones)


LUT = make_lut()
# The analytic LUTs here hold the sea-level AOT on their AOT axis (te = τ·exp(−h/2000)), so MAJA's
# one-τ-per-window method (aot_height_scale_m = 0) is exact on them. Real LUTs (6S, MAJA's GIPP) hold
# the column above the pixel: the height factor is tested on such a LUT in tests/test_atmosphere_aot.py.
PARAMS = L2Params(aot_height_scale_m=0.0)
TAU_TRUE = 0.23


def vegetation_scene(n=30, tau=TAU_TRUE, seed=0, alt_max=1500.0):
    """TOA* of vegetation pixels obeying blue = 0.45 * red at the surface (P16 MS_Slope, intercept 0)."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.0, alt_max, (n, n))
    red_s = rng.uniform(0.03, 0.08, (n, n))
    blue = forward(0, PARAMS.ms_slope * red_s, tau, h).astype(np.float32)
    red = forward(1, red_s, tau, h).astype(np.float32)
    ndvi = rng.uniform(0.5, 0.85, (n, n)).astype(np.float32)
    return blue, red, ndvi, h.astype(np.float32)


# --- dark pixel -----------------------------------------------------------------------------------


def test_dark_pixel_recovers_the_aot_of_a_001_surface():
    n = 50
    rng = np.random.default_rng(1)
    h = rng.uniform(0, 1000, (n, n))
    toa = forward(0, rng.uniform(0.05, 0.2, (n, n)), 0.3, h)
    h[10, 10:15] = 500.0
    toa[10, 10:15] = forward(0, 0.01, 0.3, 500.0)  # the darkest pixels: surface 0.01 at tau 0.3
    tau = dark_pixel_aot(toa, h, np.zeros((n, n), bool), LUT, PARAMS)
    assert tau == pytest.approx(0.3, abs=0.01)


def test_dark_pixel_ignores_excluded_pixels():
    n = 30  # < 1000 valid pixels: the darkest one itself
    h = np.zeros((n, n))
    toa = forward(0, np.full((n, n), 0.08), 0.5, h)
    toa[3, 3] = forward(0, 0.01, 0.2, 0.0)  # darker, but cloud/shadow/edge
    toa[20, 5] = forward(0, 0.01, 0.6, 0.0)
    excluded = np.zeros((n, n), bool)
    excluded[3, 3] = True
    assert dark_pixel_aot(toa, h, excluded, LUT, PARAMS) == pytest.approx(0.6, abs=0.01)
    assert dark_pixel_aot(toa, h, np.zeros((n, n), bool), LUT, PARAMS) == pytest.approx(0.2, abs=0.01)


def test_dark_pixel_percentile_skips_a_single_outlier():
    """0.1 % of 2500 valid pixels: the 3rd darkest (index floor(0.001 * 2499) = 2) is used."""
    n = 50
    h = np.zeros((n, n))
    toa = forward(0, np.full((n, n), 0.1), 0.4, h)
    toa[0, 0] = 0.0005  # noise
    toa[0, 1] = 0.0006  # noise
    toa[5, 5:10] = forward(0, 0.01, 0.4, 0.0)  # a dark water-free forest patch
    assert dark_pixel_aot(toa, h, np.zeros((n, n), bool), LUT, PARAMS) == pytest.approx(0.4, abs=0.01)
    # percentile 0 takes the minimum, as MAJA: the noise pixel, whose TOC is < 0.01 even at AOT 0
    assert dark_pixel_aot(toa, h, np.zeros((n, n), bool), LUT, PARAMS, percentile=0.0) == 0.0


def test_dark_pixel_ties_take_the_lowest_altitude():
    toa = np.full((4, 4), 0.5)
    h = np.full((4, 4), 100.0)
    value = forward(0, 0.01, 0.35, 0.0)
    toa[1, 1] = toa[2, 2] = value
    h[1, 1], h[2, 2] = 2500.0, 0.0
    tau = dark_pixel_aot(toa, h, np.zeros((4, 4), bool), LUT, PARAMS)
    assert tau == pytest.approx(0.35, abs=0.01)  # inverted at 0 m, not at 2500 m
    # the same TOA* at 2500 m corresponds to a much larger AOT: the two are far apart
    assert abs(inverse(0, value, 0.35, 2500.0) - 0.01) > 0.005


def test_dark_pixel_edge_cases():
    n = 10
    h = np.zeros((n, n))
    none = np.zeros((n, n), bool)
    # TOC < 0.01 already at AOT 0: the pixel is too dark for any AOT -> the first AOT (0)
    assert dark_pixel_aot(np.full((n, n), forward(0, 0.001, 0.0, 0.0)), h, none, LUT, PARAMS) == 0.0
    # TOC > 0.01 even at the last AOT: no constraint -> last AOT
    bright = np.full((n, n), forward(0, 0.3, 1.5, 0.0))
    assert dark_pixel_aot(bright, h, none, LUT, PARAMS) == LUT.aot_max
    # nothing valid -> last AOT (no constraint)
    assert dark_pixel_aot(bright, h, np.ones((n, n), bool), LUT, PARAMS) == LUT.aot_max
    nan = np.full((n, n), np.nan)
    assert dark_pixel_aot(nan, h, none, LUT, PARAMS) == LUT.aot_max
    with pytest.raises(InputError, match="same shape"):
        dark_pixel_aot(np.zeros((3, 3)), h, none, LUT, PARAMS)
    with pytest.raises(KeyError, match="B02"):
        dark_pixel_aot(bright, h, none, LUT, PARAMS.replace(dark_band="B02"))


# --- MS selection ---------------------------------------------------------------------------------


def test_ms_selection_hand_values():
    red = np.array([[0.05, 0.05, 0.25, 0.05, 0.05, np.nan]], np.float32)
    nir = np.array([[0.30, 0.06, 0.60, 0.30, 0.30, 0.30]], np.float32)
    none = np.zeros(red.shape, bool)
    cloud = none.copy()
    cloud[0, 3] = True
    sel, ndvi = ms_selection(red, nir, cloud, none, None, none, none, PARAMS)
    np.testing.assert_allclose(ndvi[0, :5], [0.25 / 0.35, 0.01 / 0.11, 0.35 / 0.85, 0.25 / 0.35, 0.25 / 0.35],
                               rtol=1e-6)
    assert np.isnan(ndvi[0, 5])
    # ok | NDVI 0.09 < 0.3 | red 0.25 > 0.2 | cloud | ok | NaN
    assert sel.tolist() == [[True, False, False, False, True, False]]
    assert sel.dtype == bool and ndvi.dtype == np.float32


@pytest.mark.parametrize("mask_name", ["cloud_or_shadow", "snow", "water", "saturated", "edge"])
def test_ms_selection_each_mask_excludes(mask_name):
    red = np.full((2, 2), 0.05, np.float32)
    nir = np.full((2, 2), 0.3, np.float32)
    masks = {k: np.zeros((2, 2), bool) for k in ("cloud_or_shadow", "snow", "water", "saturated", "edge")}
    masks[mask_name][0, 1] = True
    sel, _ = ms_selection(red, nir, params=PARAMS, **masks)
    assert sel.tolist() == [[True, False], [True, True]]


def test_ms_selection_thresholds_are_inclusive_and_zero_sum_is_nan():
    p = PARAMS.replace(red_toa_threshold=0.1, ndvi_aot_threshold=0.5)
    red = np.array([[0.1, 0.1, 0.0]], np.float32)
    nir = np.array([[0.3, 0.29, 0.0]], np.float32)  # NDVI 0.5 exactly, just below, 0/0
    sel, ndvi = ms_selection(red, nir, None, None, None, None, None, p)
    assert sel.tolist() == [[True, False, False]]
    assert np.isnan(ndvi[0, 2])
    with pytest.raises(InputError, match="snow"):
        ms_selection(red, nir, None, np.zeros((2, 2), bool), None, None, None, p)


# --- MS inversion ---------------------------------------------------------------------------------


def test_node_positions():
    assert aot_node_positions(9, 3).tolist() == [1, 4, 7]
    assert aot_node_positions(10, 3).tolist() == [1, 4, 7, 9]  # 10 clipped to the last pixel
    assert aot_node_positions(458, 3)[-1] == 457 and aot_node_positions(458, 3).size == 153


def test_ms_inversion_recovers_the_true_aot():
    blue, red, ndvi, h = vegetation_scene()
    sel = np.ones(blue.shape, bool)
    aot, n_used = aot_multispectral(blue, red, ndvi, h, sel, LUT, LUT.aot_max, PARAMS)
    assert aot.shape == (10, 10) and aot.dtype == np.float32 and n_used.dtype == np.int32
    assert np.all(np.isfinite(aot))
    np.testing.assert_allclose(aot, TAU_TRUE, atol=0.01)
    assert np.all(n_used == 49)  # every node: a full 7x7 sample at the first interval


@settings(max_examples=12, deadline=None)
@given(tau=st.floats(0.03, 1.2), seed=st.integers(0, 1000))
def test_ms_inversion_recovers_any_aot(tau, seed):
    blue, red, ndvi, h = vegetation_scene(n=9, tau=tau, seed=seed, alt_max=2500.0)
    aot, _ = aot_multispectral_numpy(blue, red, ndvi, h, np.ones(blue.shape, bool), LUT, math.inf, PARAMS)
    np.testing.assert_allclose(aot, tau, atol=0.01)


def test_ms_inversion_with_intercept_and_slope_of_p18():
    p = PARAMS.replace(ms_slope=0.55, ms_y_intercept=0.005)
    rng = np.random.default_rng(3)
    h = rng.uniform(0, 1000, (15, 15))
    red_s = rng.uniform(0.03, 0.08, h.shape)
    blue = forward(0, 0.55 * red_s + 0.005, 0.4, h).astype(np.float32)
    red = forward(1, red_s, 0.4, h).astype(np.float32)
    ndvi = np.full(h.shape, 0.6, np.float32)
    aot, _ = aot_multispectral_numpy(blue, red, ndvi, h.astype(np.float32), np.ones(h.shape, bool), LUT,
                                     math.inf, p)
    np.testing.assert_allclose(aot, 0.4, atol=0.01)


def test_dark_pixel_bound_pulls_towards_tau_dark():
    """Uniform scene: every node minimises 49 * (w * D(tau))^2 + W_dark * (tau - tau_dark)^2, found here
    by a dense scan of the analytic model."""
    n, red_s, ndvi_v, tau_dark = 12, 0.05, 0.6, 0.1
    h = np.zeros((n, n), np.float32)
    blue = np.full((n, n), forward(0, 0.45 * red_s, TAU_TRUE, 0.0), np.float32)
    red = np.full((n, n), forward(1, red_s, TAU_TRUE, 0.0), np.float32)
    ndvi = np.full((n, n), ndvi_v, np.float32)
    aot, n_used = aot_multispectral(blue, red, ndvi, h, np.ones((n, n), bool), LUT, tau_dark, PARAMS)
    assert np.all(n_used == 49)

    taus = np.linspace(0.0, 0.4, 40001)
    w = PARAMS.w_ms * (PARAMS.ndvi_slope * ndvi_v + PARAMS.ndvi_y_intercept)
    d = inverse(0, float(blue[0, 0]), taus, 0.0) - 0.45 * inverse(1, float(red[0, 0]), taus, 0.0)
    cost = 49 * (w * d) ** 2 + PARAMS.w_dark * np.where(taus > tau_dark, taus - tau_dark, 0.0) ** 2
    expected = taus[np.argmin(cost)]
    assert tau_dark < expected < TAU_TRUE - 0.02  # the bound is active and matters
    np.testing.assert_allclose(aot, expected, atol=0.01)
    # the lower the dark bound, the lower the estimate
    aot2, _ = aot_multispectral(blue, red, ndvi, h, np.ones((n, n), bool), LUT, 0.05, PARAMS)
    assert np.all(aot2 < aot)


def test_aot_stays_within_bounds():
    """A scene whose MS relation needs an AOT beyond the LUT is held at the last AOT (W_bounds)."""
    n = 9
    h = np.zeros((n, n), np.float32)
    red_s = 0.05
    blue = np.full((n, n), forward(0, 0.45 * red_s, 1.5, 0.0) + 0.05, np.float32)  # even hazier in blue
    red = np.full((n, n), forward(1, red_s, 1.5, 0.0), np.float32)
    aot, _ = aot_multispectral(blue, red, np.full((n, n), 0.5, np.float32), h, np.ones((n, n), bool), LUT,
                               math.inf, PARAMS)
    np.testing.assert_allclose(aot, LUT.aot_max, atol=1e-4)  # within the LM tolerance
    # below the minimum: blue too dark for the MS relation even without aerosol -> aot_min
    blue = np.full((n, n), forward(0, 0.3 * 0.45 * red_s, 0.0, 0.0), np.float32)
    red = np.full((n, n), forward(1, red_s, 0.0, 0.0), np.float32)
    aot, _ = aot_multispectral(blue, red, np.full((n, n), 0.5, np.float32), h, np.ones((n, n), bool), LUT,
                               math.inf, PARAMS)
    np.testing.assert_allclose(aot, PARAMS.aot_min, atol=1e-4)


# --- AOT over relief (aot_height_scale_m): a LUT whose AOT axis is the column above the pixel ------------
# as 6S and MAJA's GIPP (the GIPP's direct transmission holds the same aerosol optical depth at 0, 1, 2
# and 3 km). The scenes of `vegetation_scene` have the column AOT τ0·exp(−h/2000): a sea-level τ0 with
# a 2 km aerosol scale height.

HEIGHT_PARAMS = PARAMS.replace(aot_height_scale_m=2000.0)


def _make_column_lut() -> MiniLUT:
    a, k, r = np.meshgrid(ALT, AOT, TOA, indexing="ij")
    toc = np.stack([inverse(b, r, k * np.exp(a / 2000.0), a) for b in range(len(BANDS))]).astype(np.float32)
    ones = np.ones((len(BANDS), ALT.size, AOT.size), np.float32)
    return MiniLUT(BANDS, ALT.astype(np.float32), AOT.astype(np.float32), TOA.astype(np.float32), toc,
                   ones, ones, ones, ones, 0.1 * ones)


LUT_COLUMN = _make_column_lut()


def test_height_factor_values():
    h = np.array([[0.0, 1000.0, np.nan]], np.float32)
    np.testing.assert_allclose(height_factor(h, 2000.0), [[1.0, math.exp(-0.5), 1.0]], rtol=1e-12)
    assert height_factor(h, 2000.0).dtype == np.float64
    np.testing.assert_array_equal(height_factor(h, 0.0), np.ones((1, 3)))
    np.testing.assert_array_equal(height_factor(h, -5.0), np.ones((1, 3)))


def test_aot_at_altitude():
    aot0 = np.array([[0.2, 0.3]], np.float32)
    h = np.array([[0.0, 2000.0]], np.float32)
    out = aot_at_altitude(aot0, h, HEIGHT_PARAMS)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.2, 0.3 * math.exp(-1.0)]], rtol=1e-6)
    np.testing.assert_array_equal(aot_at_altitude(aot0, h, PARAMS), aot0)  # H = 0: unchanged
    with pytest.raises(InputError, match="aot_at_altitude"):
        aot_at_altitude(aot0, h[:, :1], HEIGHT_PARAMS)


def test_height_factor_recovers_the_sea_level_aot_over_relief():
    """Column-AOT LUT, pixels at 0..2500 m, τ(h) = τ0·exp(−h/2000): each node finds τ0 with the height
    factor; with MAJA's one τ per window (H = 0) it finds a window-average column instead."""
    blue, red, ndvi, h = vegetation_scene(n=30, seed=4, alt_max=2500.0)
    sel = np.ones(h.shape, bool)
    aot0, _ = aot_multispectral_numpy(blue, red, ndvi, h, sel, LUT_COLUMN, math.inf, HEIGHT_PARAMS)
    np.testing.assert_allclose(aot0, TAU_TRUE, atol=0.01)
    column = aot_at_altitude(aot0[1:2, 1:2], h[4:5, 4:5], HEIGHT_PARAMS)  # node (1, 1) sits at pixel (4, 4)
    np.testing.assert_allclose(column, TAU_TRUE * np.exp(-h[4, 4] / 2000.0), atol=0.01)
    one_tau, _ = aot_multispectral_numpy(blue, red, ndvi, h, sel, LUT_COLUMN, math.inf, PARAMS)
    assert np.all(one_tau < TAU_TRUE - 0.04)  # a column of the window's altitudes, not τ0


def test_dark_pixel_reduced_to_sea_level():
    n = 20
    rng = np.random.default_rng(5)
    h = np.full((n, n), 1000.0)
    toa = forward(0, rng.uniform(0.05, 0.2, (n, n)), 0.3, h)
    toa[3, 3] = forward(0, 0.01, 0.3, 1000.0)  # sea-level 0.3, column 0.3·exp(−0.5) at 1000 m
    column = dark_pixel_aot(toa, h, np.zeros((n, n), bool), LUT_COLUMN, PARAMS, percentile=0.0)
    np.testing.assert_allclose(column, 0.3 * math.exp(-0.5), atol=0.005)
    sea = dark_pixel_aot(toa, h, np.zeros((n, n), bool), LUT_COLUMN, PARAMS, percentile=0.0, height_scale_m=2000.0)
    np.testing.assert_allclose(sea, column * math.exp(0.5), rtol=1e-12)


def _brute_force_n_used(sel: np.ndarray, params: L2Params) -> np.ndarray:
    """Selected samples at the first sufficient interval, by plain loops over the documented rule."""
    cy, cx = sel.shape
    s = params.step_aot
    gy, gx = -(-cy // s), -(-cx // s)
    hw = params.half_window_size
    out = np.zeros((gy, gx), np.int32)
    for j in range(gy):
        for i in range(gx):
            y0, x0 = min(j * s + s // 2, cy - 1), min(i * s + s // 2, cx - 1)
            interval = params.sampling_interval_min
            while interval <= params.sampling_interval_max:
                c = 0
                for a in range(-hw, hw + 1):
                    for b in range(-hw, hw + 1):
                        y = min(max(y0 + a * interval, 0), cy - 1)
                        x = min(max(x0 + b * interval, 0), cx - 1)
                        c += bool(sel[y, x])
                if c >= params.n_pix_min:
                    out[j, i] = c
                    break
                interval += params.increment_n_distance
    return out


def test_sampling_interval_growth_matches_brute_force():
    blue, red, ndvi, h = vegetation_scene(n=40, seed=5)
    rng = np.random.default_rng(6)
    sel = rng.random(blue.shape) < 0.4  # sparse: ~20 of 49 samples, many nodes need a wider interval
    sel[:, 25:] = False  # and a region with nothing at all
    aot, n_used = aot_multispectral_numpy(blue, red, ndvi, h, sel, LUT, math.inf, PARAMS)
    expected = _brute_force_n_used(sel, PARAMS)
    np.testing.assert_array_equal(n_used, expected)
    assert (expected == 0).any() and (expected > 0).any()
    np.testing.assert_array_equal(np.isnan(aot), expected == 0)
    np.testing.assert_allclose(aot[expected > 0], TAU_TRUE, atol=0.01)


def test_not_enough_pixels_gives_nan_then_filled_and_flagged():
    blue, red, ndvi, h = vegetation_scene(n=60, seed=7)
    sel = np.zeros(blue.shape, bool)
    sel[:, :18] = True  # vegetation only in the left 18 columns
    aot, n_used = aot_multispectral(blue, red, ndvi, h, sel, LUT, math.inf, PARAMS, backend=CPU)
    nx = aot_node_positions(60, PARAMS.step_aot)
    far = nx - PARAMS.half_window_size * PARAMS.sampling_interval_max >= 18  # no selected pixel in reach
    assert far.any()
    assert np.all(np.isnan(aot[:, far])) and np.all(n_used[:, far] == 0)
    assert np.all(np.isfinite(aot[:, nx < 18]))

    filled, interp = fill_and_smooth_aot(aot, PARAMS)
    assert filled.dtype == np.float32 and interp.dtype == bool
    np.testing.assert_array_equal(interp, np.isnan(aot))
    assert np.all(np.isfinite(filled))
    np.testing.assert_allclose(filled, TAU_TRUE, atol=0.01)  # filled from estimates of the same tau


def test_input_validation():
    blue, red, ndvi, h = vegetation_scene(n=9)
    sel = np.ones(blue.shape, bool)
    with pytest.raises(InputError, match="same|shape"):
        aot_multispectral(blue, red[:5], ndvi, h, sel, LUT, 0.5, PARAMS)
    with pytest.raises(InputError, match="increment_n_distance"):
        aot_multispectral(blue, red, ndvi, h, sel, LUT, 0.5, PARAMS.replace(increment_n_distance=0))
    with pytest.raises(KeyError, match="B02"):
        aot_multispectral(blue, red, ndvi, h, sel, LUT, 0.5, PARAMS.replace(blue_band="B02"))


def test_nan_inputs_are_never_used():
    blue, red, ndvi, h = vegetation_scene(n=12)
    blue[2:5, 2:5] = np.nan
    h[7, 7] = np.nan
    aot, n_used = aot_multispectral_numpy(blue, red, ndvi, h, np.ones(blue.shape, bool), LUT, math.inf, PARAMS)
    assert np.all(np.isfinite(aot))
    np.testing.assert_allclose(aot, TAU_TRUE, atol=0.01)
    assert n_used.min() < 49  # NaN pixels were dropped from some windows


# --- post-processing ------------------------------------------------------------------------------


def _brute_fill(grid: np.ndarray, radii: list[int], default: float) -> np.ndarray:
    out = grid.copy()
    valid = np.isfinite(grid)
    for y, x in zip(*np.nonzero(~valid)):
        out[y, x] = default
        for r in radii:
            win = grid[max(0, y - r): y + r + 1, max(0, x - r): x + r + 1]
            ok = np.isfinite(win)
            if ok.any():
                out[y, x] = win[ok].mean()
                break
    return out


def test_gap_filling_growing_window_without_smoothing():
    p = PARAMS.replace(sigma_smoothing_aot=0.0)
    rng = np.random.default_rng(8)
    grid = rng.uniform(0.05, 0.5, (40, 40))
    grid[5:30, 3:35] = np.nan  # a large hole: its centre needs radius 8 or 16
    grid[38, 38] = np.nan
    filled, interp = fill_and_smooth_aot(grid, p)
    expected = _brute_fill(grid, [2, 4, 8, 16], p.default_aot)  # radii double from 2 up to 16
    np.testing.assert_allclose(filled, expected, rtol=1e-6)
    np.testing.assert_array_equal(interp, np.isnan(grid))


def test_gap_filling_default_and_smoothing():
    all_nan = np.full((6, 7), np.nan, np.float32)
    filled, interp = fill_and_smooth_aot(all_nan, PARAMS)
    np.testing.assert_allclose(filled, PARAMS.default_aot, rtol=1e-6)
    assert interp.all()
    # a hole farther than max_window_radius from any valid node gets the default
    grid = np.full((1, 40), np.nan)
    grid[0, 0] = 0.3
    filled, _ = fill_and_smooth_aot(grid, PARAMS.replace(sigma_smoothing_aot=0.0))
    assert filled[0, 16] == pytest.approx(0.3) and filled[0, 17] == pytest.approx(PARAMS.default_aot)
    # smoothing keeps a constant grid and softens a step monotonically
    const, _ = fill_and_smooth_aot(np.full((10, 10), 0.2), PARAMS)
    np.testing.assert_allclose(const, 0.2, rtol=1e-6)
    step = np.where(np.arange(20)[None, :] < 10, 0.1, 0.5) * np.ones((20, 1))
    smooth, _ = fill_and_smooth_aot(step, PARAMS)
    row = smooth[10]
    assert np.all(np.diff(row) >= -1e-7) and 0.1 < row[9] < 0.3 < row[10] < 0.5
    np.testing.assert_allclose(row[9] + row[10], 0.6, atol=1e-6)  # symmetric step


def test_aot_to_grid_reproduces_a_linear_field_and_clamps():
    step = 3
    shape = (10, 8)  # nodes rows 1, 4, 7, 9 (clipped); cols 1, 4, 7
    ny, nx = aot_node_positions(shape[0], step), aot_node_positions(shape[1], step)
    grid = 0.1 + 0.01 * ny[:, None] + 0.02 * nx[None, :]
    out = aot_to_grid(grid, step, shape)
    assert out.shape == shape and out.dtype == np.float32
    y = np.clip(np.arange(shape[0]), ny[0], ny[-1])[:, None]
    x = np.clip(np.arange(shape[1]), nx[0], nx[-1])[None, :]
    np.testing.assert_allclose(out, 0.1 + 0.01 * y + 0.02 * x, rtol=1e-6)
    # hand values: pixel (2, 1) is 1/3 of the way from node row 1 to node row 4
    g = np.array([[0.0, 0.0, 0.0], [0.3, 0.3, 0.3], [0.3, 0.3, 0.3], [0.3, 0.3, 0.3]])
    assert aot_to_grid(g, step, shape)[2, 1] == pytest.approx(0.1)
    assert aot_to_grid(g, step, shape)[0, 0] == pytest.approx(0.0)
    with pytest.raises(InputError, match="expected"):
        aot_to_grid(np.zeros((3, 3)), step, shape)
    # a single node: constant everywhere
    np.testing.assert_allclose(aot_to_grid(np.array([[0.25]]), 3, (2, 3)), 0.25)


# --- GPU kernel vs NumPy twin ---------------------------------------------------------------------


def _random_inputs(n, seed):
    rng = np.random.default_rng(seed)
    blue = rng.uniform(-0.05, 0.4, (n, n)).astype(np.float32)
    red = rng.uniform(-0.05, 0.4, (n, n)).astype(np.float32)
    ndvi = rng.uniform(-0.5, 1.0, (n, n)).astype(np.float32)
    h = rng.uniform(-100, 3500, (n, n)).astype(np.float32)
    sel = rng.random((n, n)) < rng.uniform(0.05, 0.9)
    return blue, red, ndvi, h, sel


def _compare_gpu(blue, red, ndvi, h, sel, aot_dark, params=PARAMS, lut=LUT):
    import cupy

    a_np, n_np = aot_multispectral_numpy(blue, red, ndvi, h, sel, lut, aot_dark, params)
    a_gpu, n_gpu = aot_multispectral(*(cupy.asarray(a) for a in (blue, red, ndvi, h, sel)), lut, aot_dark, params)
    assert isinstance(a_gpu, cupy.ndarray) and a_gpu.dtype == cupy.float32 and n_gpu.dtype == cupy.int32
    np.testing.assert_array_equal(n_gpu.get(), n_np)
    np.testing.assert_array_equal(np.isnan(a_gpu.get()), np.isnan(a_np))
    np.testing.assert_allclose(a_gpu.get(), a_np, atol=1e-5, equal_nan=True)


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gpu_matches_numpy_random(seed):
    blue, red, ndvi, h, sel = _random_inputs(64, seed)
    _compare_gpu(blue, red, ndvi, h, sel, aot_dark=[0.2, math.inf, 0.05][seed])


@pytest.mark.gpu
def test_gpu_matches_numpy_realistic():
    blue, red, ndvi, h = vegetation_scene(n=459, seed=11, alt_max=2500.0)  # a full S2 tile: 153 x 153 nodes
    rng = np.random.default_rng(12)
    sel = rng.random(blue.shape) < 0.7
    sel[100:250, 50:300] = False  # a cloud
    _compare_gpu(blue, red, ndvi, h, sel, aot_dark=0.25)
    _compare_gpu(blue, red, ndvi, h, sel, aot_dark=math.inf, params=PARAMS.replace(n_pix_min=40))


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1])
def test_gpu_matches_numpy_with_height_factor(seed):
    """The sample AOTs s_p·τ (per-sample AOT cells): random inputs (altitudes −100..3500 m) and a
    column-AOT LUT scene."""
    blue, red, ndvi, h, sel = _random_inputs(64, seed)
    _compare_gpu(blue, red, ndvi, h, sel, aot_dark=0.3, params=HEIGHT_PARAMS)
    blue, red, ndvi, h = vegetation_scene(n=120, seed=seed, alt_max=2500.0)
    _compare_gpu(blue, red, ndvi, h, np.ones(h.shape, bool), aot_dark=math.inf, params=HEIGHT_PARAMS,
                 lut=LUT_COLUMN)


@pytest.mark.gpu
def test_gpu_postprocessing_matches_numpy():
    import cupy

    rng = np.random.default_rng(13)
    grid = rng.uniform(0.05, 0.5, (50, 60))
    grid[rng.random(grid.shape) < 0.4] = np.nan
    grid[10:30, 10:40] = np.nan
    f_np, i_np = fill_and_smooth_aot(grid, PARAMS)
    f_gpu, i_gpu = fill_and_smooth_aot(cupy.asarray(grid), PARAMS, xp=cupy)
    np.testing.assert_allclose(f_gpu.get(), f_np, rtol=1e-5)
    np.testing.assert_array_equal(i_gpu.get(), i_np)
    r_np = aot_to_grid(f_np, 3, (150, 180))
    r_gpu = aot_to_grid(f_gpu, 3, (150, 180), xp=cupy)
    np.testing.assert_allclose(r_gpu.get(), r_np, rtol=1e-6)
    sel_np, ndvi_np = ms_selection(grid, grid + 0.2, None, None, None, None, None, PARAMS)
    sel_gpu, ndvi_gpu = ms_selection(cupy.asarray(grid), cupy.asarray(grid + 0.2), None, None, None, None, None,
                                     PARAMS, xp=cupy)
    np.testing.assert_array_equal(sel_gpu.get(), sel_np)
    np.testing.assert_allclose(ndvi_gpu.get(), ndvi_np, rtol=1e-6, equal_nan=True)

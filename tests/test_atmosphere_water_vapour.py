"""Water vapour on the coarse grid (maja-l2a.md §3.4) and the growing-window gap filling it uses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpumaja.atmosphere.gapfill import gap_fill_mean, window_radii
from gpumaja.atmosphere.water_vapour import constant_water_vapour, water_vapour_map
from gpumaja.errors import InputError
from gpumaja.model.params import L2Params

PARAMS = L2Params()  # B8A floor 0.1, B9 floor 0.1, radii 2..16, max 8 g/cm2, default 2 g/cm2
SUN, VIEW = 40.0, 7.0


def watv(sun_zenith, view_zenith, ratio):
    """A monotonic WATV stand-in: W = 12 * airmass / airmass(40, 7) * (1 - ratio); negative for
    ratio > 1, above 8 for ratio < 1/3 (at the test geometry)."""
    m = 1 / math.cos(math.radians(sun_zenith)) + 1 / math.cos(math.radians(view_zenith))
    m0 = 1 / math.cos(math.radians(SUN)) + 1 / math.cos(math.radians(VIEW))
    return 12.0 * (m / m0) * (1.0 - ratio)


def expected_w(wv, ref):
    return np.minimum(12.0 * (1.0 - np.float64(np.float32(wv)) / np.float64(np.float32(ref))), 8.0)


def _brute_fill(values, kept, valid, radii, default):
    out = np.where(valid, values, np.nan)
    cy, cx = values.shape
    for y in range(cy):
        for x in range(cx):
            if not valid[y, x] or kept[y, x]:
                continue
            out[y, x] = default
            for r in radii:
                win = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
                if kept[win].any():
                    out[y, x] = values[win][kept[win]].mean()
                    break
    return out


def test_values_follow_the_lut_and_clip_at_max():
    ref = np.full((3, 4), 0.4, np.float32)
    wv = np.array([[0.36, 0.32, 0.28, 0.24], [0.20, 0.15, 0.12, 0.10], [0.2, 0.2, 0.2, 0.2]], np.float32)
    valid = np.ones(ref.shape, bool)
    w, interp = water_vapour_map(wv, ref, watv, SUN, VIEW, valid, PARAMS)
    assert w.dtype == np.float32 and interp.dtype == bool and w.shape == ref.shape
    np.testing.assert_allclose(w, expected_w(wv, ref), rtol=1e-6)
    assert not interp.any()  # clipped values are estimates, not interpolated
    # hand values: ratio 0.9 -> 1.2, 0.5 -> 6.0, 0.375 -> 7.5; 0.3 -> 8.4 and 0.25 -> 9.0 clip to 8
    np.testing.assert_allclose([w[0, 0], w[1, 0], w[1, 1], w[1, 2], w[1, 3]], [1.2, 6.0, 7.5, 8.0, 8.0], rtol=1e-5)
    assert w[1, 2] == np.float32(8.0) and w[1, 3] == np.float32(8.0)


def test_lut_receives_the_angles_and_ratios():
    calls = []

    def spy(sz, vz, ratio):
        calls.append((sz, vz, np.array(ratio)))
        return np.full(np.shape(ratio), 1.5)

    ref = np.array([[0.2, 0.4]], np.float32)
    wv = np.array([[0.15, 0.2]], np.float32)
    w, _ = water_vapour_map(wv, ref, spy, 33.0, 5.5, np.ones((1, 2), bool), PARAMS)
    assert len(calls) == 1 and calls[0][:2] == (33.0, 5.5)
    np.testing.assert_allclose(calls[0][2], [[0.75, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(w, 1.5)


def test_negative_nodata_and_dark_pixels_are_gap_filled_and_flagged():
    cy, cx = 12, 12
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.2, 0.4, (cy, cx)).astype(np.float32)
    wv = (ref * rng.uniform(0.5, 0.8, (cy, cx))).astype(np.float32)
    valid = np.ones((cy, cx), bool)
    wv[2, 3] = ref[2, 3] * 1.2  # ratio > 1 -> W < 0 -> nodata
    ref[5, 5] = 5e-7  # reference below 1e-6 -> nodata
    ref[8, 1] = 0.05  # dark reference (< 0.1)
    wv[9, 9] = 0.08  # dark WV band (< 0.1)
    wv[0, 11] = np.nan
    w, interp = water_vapour_map(wv, ref, watv, SUN, VIEW, valid, PARAMS)

    holes = np.zeros((cy, cx), bool)
    holes[2, 3] = holes[5, 5] = holes[8, 1] = holes[9, 9] = holes[0, 11] = True
    np.testing.assert_array_equal(interp, holes)
    values = expected_w(wv, ref)
    expected = _brute_fill(np.nan_to_num(values), ~holes, valid, [2, 4, 8, 16], PARAMS.water_amount_default)
    np.testing.assert_allclose(w, expected, rtol=1e-5)
    assert np.all(w[holes] > 0)


def test_window_grows_and_default_when_nothing_in_reach():
    """Kept pixels only in the top-left corner: nearby holes take the radius-2 mean, farther ones
    radius 4, 8, 16 (the radius doubles), the rest the default."""
    cy, cx = 40, 40
    ref = np.full((cy, cx), 0.05, np.float32)  # dark everywhere ...
    wv = np.full((cy, cx), 0.2, np.float32)
    ref[:3, :3] = 0.3  # ... but a 3x3 bright corner
    wv[:3, :3] = np.array([[0.15, 0.18, 0.21], [0.24, 0.27, 0.15], [0.18, 0.21, 0.24]], np.float32)
    valid = np.ones((cy, cx), bool)
    w, interp = water_vapour_map(wv, ref, watv, SUN, VIEW, valid, PARAMS)
    kept = np.zeros((cy, cx), bool)
    kept[:3, :3] = True
    values = expected_w(wv, ref)
    expected = _brute_fill(values, kept, valid, [2, 4, 8, 16], PARAMS.water_amount_default)
    np.testing.assert_allclose(w, expected, rtol=1e-5)
    np.testing.assert_array_equal(interp, ~kept)
    assert w[30, 30] == pytest.approx(PARAMS.water_amount_default)  # 28 px away > 16
    # radius 16 from (17, 17) spans rows/cols 1..33: the kept pixels (1..2, 1..2)
    assert w[17, 17] == pytest.approx(values[1:3, 1:3].mean(), rel=1e-5)
    # radius 2 from (4, 4) sees only (2, 2); radius 2 from (4, 1) sees the bottom row (2, 0..3)
    assert w[4, 4] == pytest.approx(values[2, 2], rel=1e-5)
    assert w[4, 1] == pytest.approx(values[2, :3].mean(), rel=1e-5)


def test_outside_the_image_is_nan_and_never_used():
    ref = np.full((6, 6), 0.3, np.float32)
    wv = np.full((6, 6), 0.15, np.float32)  # W = 6
    valid = np.ones((6, 6), bool)
    valid[:, 4:] = False
    wv[:, 4:] = 0.12  # W would be 7.2: must not leak into the filling
    ref[0, 0] = 0.01
    w, interp = water_vapour_map(wv, ref, watv, SUN, VIEW, valid, PARAMS)
    assert np.isnan(w[:, 4:]).all() and not interp[:, 4:].any()
    assert interp[0, 0] and w[0, 0] == pytest.approx(6.0, rel=1e-6)


def test_everything_dark_gives_the_default_everywhere():
    ref = np.full((5, 5), 0.02, np.float32)
    w, interp = water_vapour_map(ref, ref, watv, SUN, VIEW, np.ones((5, 5), bool), PARAMS)
    np.testing.assert_allclose(w, PARAMS.water_amount_default)
    assert interp.all()


def test_lut_nan_is_nodata():
    ref = np.full((3, 3), 0.3, np.float32)
    wv = np.full((3, 3), 0.15, np.float32)

    def holey(sz, vz, ratio):
        out = watv(sz, vz, ratio)
        out[1, 1] = np.nan
        return out

    w, interp = water_vapour_map(wv, ref, holey, SUN, VIEW, np.ones((3, 3), bool), PARAMS)
    assert interp.sum() == 1 and interp[1, 1]
    np.testing.assert_allclose(w, 6.0, rtol=1e-6)


def test_bad_inputs():
    a = np.zeros((3, 3), np.float32)
    with pytest.raises(InputError, match="same"):
        water_vapour_map(a, a[:2], watv, SUN, VIEW, np.ones((3, 3), bool), PARAMS)
    with pytest.raises(InputError, match="WATV"):
        water_vapour_map(a, a, lambda s, v, r: np.zeros(2), SUN, VIEW, np.ones((3, 3), bool), PARAMS)
    with pytest.raises(InputError, match="radii"):
        water_vapour_map(a, a, watv, SUN, VIEW, np.ones((3, 3), bool),
                         PARAMS.replace(water_vapor_init_window_radius=20))


def test_constant_water_vapour():
    w, interp = constant_water_vapour((4, 5), PARAMS)
    assert w.shape == (4, 5) and w.dtype == np.float32 and interp.dtype == bool
    np.testing.assert_allclose(w, 2.0)
    assert not interp.any()
    w, _ = constant_water_vapour((2, 2), PARAMS.replace(water_amount_default=3.5))
    np.testing.assert_allclose(w, 3.5)


def test_window_radii():
    assert window_radii(2, 16) == [2, 4, 8, 16]
    assert window_radii(3, 16) == [3, 6, 12, 16]
    assert window_radii(0, 2) == [0, 1, 2]
    assert window_radii(5, 5) == [5]
    with pytest.raises(InputError):
        window_radii(-1, 4)


@settings(max_examples=40, deadline=None)
@given(
    values=hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                      elements=st.floats(0.0, 10.0)),
    data=st.data(),
)
def test_gap_fill_matches_brute_force(values, data):
    kept = data.draw(hnp.arrays(bool, values.shape))
    r0 = data.draw(st.integers(0, 3))
    rmax = data.draw(st.integers(r0, 6))
    filled, found = gap_fill_mean(values, kept, r0, rmax)
    expected = _brute_fill(values, kept, np.ones(values.shape, bool), window_radii(r0, rmax), np.nan)
    np.testing.assert_array_equal(found, np.isfinite(expected))
    np.testing.assert_allclose(filled, expected, rtol=1e-9, atol=1e-9, equal_nan=True)
    # invariant: a filled value lies between the min and max of the kept values
    if kept.any() and found.any():
        assert filled[found].min() >= values[kept].min() - 1e-9
        assert filled[found].max() <= values[kept].max() + 1e-9


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_invariants(data):
    shape = data.draw(st.tuples(st.integers(1, 10), st.integers(1, 10)))
    refl = st.floats(-0.125, 1.25, width=32) | st.just(float("nan"))
    ref = data.draw(hnp.arrays(np.float32, shape, elements=refl))
    wv = data.draw(hnp.arrays(np.float32, shape, elements=refl))
    valid = data.draw(hnp.arrays(bool, shape))
    w, interp = water_vapour_map(wv, ref, watv, SUN, VIEW, valid, PARAMS)
    assert np.isnan(w[~valid]).all()
    assert np.isfinite(w[valid]).all()
    assert (w[valid] >= 0).all() and (w[valid] <= PARAMS.water_vapor_max).all()
    assert not (interp & ~valid).any()
    kept = valid & ~interp
    np.testing.assert_allclose(w[kept], expected_w(wv[kept], ref[kept]), rtol=1e-5)


@pytest.mark.gpu
def test_gpu_matches_numpy():
    import cupy

    def watv_xp(sz, vz, ratio):
        return watv(sz, vz, ratio)  # works on NumPy and CuPy arrays alike

    rng = np.random.default_rng(3)
    ref = rng.uniform(0.0, 0.5, (200, 230)).astype(np.float32)
    wv = (ref * rng.uniform(0.2, 1.3, ref.shape)).astype(np.float32)
    valid = np.ones(ref.shape, bool)
    valid[:, :20] = False
    ref[50:120, 60:160] = 0.02  # a large dark (water) area
    w_np, i_np = water_vapour_map(wv, ref, watv_xp, SUN, VIEW, valid, PARAMS)
    w_gpu, i_gpu = water_vapour_map(cupy.asarray(wv), cupy.asarray(ref), watv_xp, SUN, VIEW, cupy.asarray(valid),
                                    PARAMS, xp=cupy)
    assert isinstance(w_gpu, cupy.ndarray)
    np.testing.assert_array_equal(i_gpu.get(), i_np)
    np.testing.assert_allclose(w_gpu.get(), w_np, rtol=1e-5, equal_nan=True)
    c_gpu, _ = constant_water_vapour((3, 3), PARAMS, xp=cupy)
    assert isinstance(c_gpu, cupy.ndarray)

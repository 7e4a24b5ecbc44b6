"""Morphology and coarse -> fine resampling: hand-derived shapes, bilinear formulas and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpumaja.masks.morphology import (
    axis_weights,
    closing,
    dilate,
    disk,
    erode,
    resample_float,
    resample_mask,
)
from gpumaja.model.params import L2Params

masks = hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12))


def test_disk_is_the_itk_ball():
    # ITK ball: offsets with dy^2 + dx^2 <= (r + 0.5)^2.
    assert disk(0).tolist() == [[True]]
    assert disk(1).all() and disk(1).shape == (3, 3)  # 2 <= 2.25: the full 3x3 square
    d2 = disk(2)
    assert d2.shape == (5, 5)
    assert not d2[0, 0] and not d2[0, 4] and not d2[4, 0] and not d2[4, 4]  # 8 > 6.25
    assert d2.sum() == 21  # 25 minus the 4 corners; (2, 1): 5 <= 6.25 is in
    d3 = disk(3)  # (3, 1): 10 <= 12.25 in; (3, 2): 13 > 12.25 out; (2, 2): 8 in
    assert d3[0, 2] and d3[0, 4] and not d3[0, 1] and d3[1, 1]
    with pytest.raises(ValueError, match="radius"):
        disk(-1)


def test_dilate_single_pixel_and_radius_zero():
    m = np.zeros((7, 7), bool)
    m[3, 3] = True
    assert (dilate(m, 0) == m).all()
    d1 = dilate(m, 1)
    expected = np.zeros((7, 7), bool)
    expected[2:5, 2:5] = True
    assert (d1 == expected).all()
    d2 = dilate(m, 2)
    assert d2.sum() == 21 and d2[3, 1] and d2[2, 1] and not d2[1, 1]


def test_dilate_at_border_does_not_wrap():
    m = np.zeros((4, 4), bool)
    m[0, 0] = True
    d = dilate(m, 1)
    assert d[:2, :2].all() and d.sum() == 4


def test_closing_fills_a_one_pixel_gap_and_keeps_border_pixels():
    m = np.zeros((5, 7), bool)
    m[2, 1:3] = True
    m[2, 4:6] = True  # gap at column 3
    c = closing(m, 1)
    expected = m.copy()
    expected[2, 3] = True
    assert (c == expected).all()
    # A pixel on the border survives (safe border: no erosion from outside the image).
    b = np.zeros((3, 3), bool)
    b[0, 0] = True
    assert (closing(b, 1) == b).all()
    # Radius 1 grows each side by one pixel: a 2-pixel gap is bridged, a 3-pixel gap is not.
    g = np.zeros((3, 8), bool)
    g[1, 0:3] = True
    g[1, 5:8] = True
    assert (closing(g, 1)[1] == np.ones(8, bool)).all() and closing(g, 1).sum() == 8
    h = np.zeros((3, 9), bool)
    h[1, 0:3] = True
    h[1, 6:9] = True
    assert (closing(h, 1) == h).all()


@settings(max_examples=60, deadline=None)
@given(masks, st.integers(0, 3), st.data())
def test_dilation_monotonic_and_extensive(m, r, data):
    sub = m & data.draw(hnp.arrays(bool, m.shape))
    d, ds = dilate(m, r), dilate(sub, r)
    assert (d >= m).all()
    assert (ds <= d).all()
    e = erode(m, r)
    assert (e <= m).all()


@settings(max_examples=60, deadline=None)
@given(masks, st.integers(0, 3))
def test_closing_extensive_and_idempotent(m, r):
    c = closing(m, r)
    assert (c >= m).all()
    assert (closing(c, r) == c).all()


# --- resampling ------------------------------------------------------------------------------------


def test_axis_weights_alignment():
    # f = 24: fine pixel 0 at coarse coordinate 0.5/24 - 0.5 < 0 -> clamped to coarse 0 with both taps.
    i0, i1, w0, w1 = axis_weights(48, 2, 24)
    assert i0[0] == 0 and i1[0] == 0
    # Fine pixel 12: (12.5)/24 - 0.5 = 1/48 -> taps (0, 1), w1 = 1/48.
    assert (i0[12], i1[12]) == (0, 1)
    assert w1[12] == pytest.approx(1 / 48) and w0[12] == pytest.approx(47 / 48)
    # Last fine pixel 47: 47.5/24 - 0.5 = 1.479 -> (1, 2) clamped to (1, 1).
    assert (i0[47], i1[47]) == (1, 1)


def _hat_mask(cy, cx, jy, jx, f, thr):
    """Independent 2-D formula: value = (1 - |dy|/f)(1 - |dx|/f) for a single 1 at coarse (jy, jx)."""
    out = np.zeros((cy * f, cx * f), bool)
    cyc, cxc = (jy + 0.5) * f, (jx + 0.5) * f  # coarse pixel centre in fine-edge units
    for y in range(cy * f):
        for x in range(cx * f):
            dy, dx = abs(y + 0.5 - cyc), abs(x + 0.5 - cxc)
            out[y, x] = max(0.0, 1 - dy / f) * max(0.0, 1 - dx / f) > thr
    return out


def test_single_cloudy_coarse_pixel_factor_24():
    m = np.zeros((3, 3), bool)
    m[1, 1] = True
    r = resample_mask(m, 24)
    assert r.shape == (72, 72) and r.dtype == bool
    # By hand: along the centre rows the weight is 1 - d/24 with d = distance (fine px) from the coarse
    # centre at fine coordinate 36; 1 - d/24 > 0.25 <=> d < 18, and centres sit at half-integers, so
    # columns 36 - 18 = 18 ... 53 (d = 17.5) are in: 36 pixels. The coarse footprint 24..47 has
    # d <= 11.5 in both directions: (12.5/24)^2 = 0.271 > 0.25, all in. The bounding-box corners are
    # out: (1 - 17.5/24)^2 = 0.073.
    assert r[36, 18:54].all() and not r[36, 17] and not r[36, 54]
    assert r[24:48, 24:48].all()
    cols = np.where(r.any(axis=0))[0]
    rows = np.where(r.any(axis=1))[0]
    assert (cols[0], cols[-1], rows[0], rows[-1]) == (18, 53, 18, 53)
    assert not r[18, 18] and not r[53, 53]
    # The footprint's corner pixel row 24 reaches out to d < 144/12.5 = 11.52 -> columns 24..47 only.
    assert r[24].sum() == 24
    assert (r == _hat_mask(3, 3, 1, 1, 24, 0.25)).all()


@pytest.mark.parametrize("f", [8, 12])
def test_single_pixel_other_factors_and_threshold(f):
    m = np.zeros((4, 3), bool)
    m[2, 0] = True  # a border column: the clamp holds the value out to the left edge
    thr = L2Params().mask_resampling_threshold
    r = resample_mask(m, f)
    expected = _hat_mask(4, 3, 2, 0, f, thr)
    # Left of the first coarse centre (x < f/2) the edge clamp keeps the x-weight at 1.
    yc = 2.5 * f
    for y in range(4 * f):
        for x in range(f // 2):
            expected[y, x] = max(0.0, 1 - abs(y + 0.5 - yc) / f) > thr
    assert (r == expected).all()


def test_crop_and_shape_errors():
    m = np.ones((2, 2), bool)
    r = resample_mask(m, 24, shape=(40, 30))
    assert r.shape == (40, 30) and r.all()
    with pytest.raises(ValueError, match="exceeds"):
        resample_mask(m, 24, shape=(49, 10))
    with pytest.raises(ValueError, match="factor"):
        resample_mask(m, 2.5)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 13), st.booleans())
def test_constant_masks_stay_constant(cy, cx, f, value):
    m = np.full((cy, cx), value)
    r = resample_mask(m, f)
    assert r.shape == (cy * f, cx * f)
    assert (r == value).all()


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(bool, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5)), st.integers(1, 9))
def test_resample_mask_matches_the_bilinear_formula(m, f):
    cy, cx = m.shape
    y = (np.arange(cy * f) + 0.5) / f - 0.5
    x = (np.arange(cx * f) + 0.5) / f - 0.5
    expected = np.zeros((cy * f, cx * f))
    for j in range(cy):
        for i in range(cx):
            if not m[j, i]:
                continue
            # Hat function, with the edge clamp: beyond the first/last centre the weight stays 1.
            wy = np.maximum(0, 1 - np.abs(np.clip(y, 0, cy - 1) - j))
            wx = np.maximum(0, 1 - np.abs(np.clip(x, 0, cx - 1) - i))
            expected += wy[:, None] * wx[None, :]
    r = resample_mask(m, f)
    # Away from exact ties (float32 rounding), the result is expected > 0.25.
    tie = np.abs(expected - 0.25) < 1e-5
    assert (r[~tie] == (expected > 0.25)[~tie]).all()


def test_resample_mask_chunked_large_rows(monkeypatch):
    from gpumaja.masks import morphology

    m = np.zeros((5, 4), bool)
    m[1, 2] = m[3, 0] = True
    whole = resample_mask(m, 12)
    monkeypatch.setattr(morphology, "_ROWS_PER_CHUNK", 7)
    assert (resample_mask(m, 12) == whole).all()
    field = np.arange(20, dtype=np.float32).reshape(5, 4)
    a = resample_float(field, 12)
    monkeypatch.setattr(morphology, "_ROWS_PER_CHUNK", 512)
    np.testing.assert_array_equal(resample_float(field, 12), a)


def test_resample_float_reproduces_a_linear_field():
    cy, cx, f = 4, 5, 8
    jj, ii = np.mgrid[0:cy, 0:cx]
    field = (2.0 * jj - 3.0 * ii + 10.0).astype(np.float32)
    out = resample_float(field, f)
    assert out.dtype == np.float32 and out.shape == (cy * f, cx * f)
    u = np.clip((np.arange(cy * f) + 0.5) / f - 0.5, 0, cy - 1)
    v = np.clip((np.arange(cx * f) + 0.5) / f - 0.5, 0, cx - 1)
    expected = 2.0 * u[:, None] - 3.0 * v[None, :] + 10.0
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-5)


def test_resample_float_nan_aware():
    c = np.array([[np.nan, np.nan], [np.nan, 5.0]], np.float32)
    out = resample_float(c, 2)
    # Fine row 0 / column 0 lie before the first coarse centre: only coarse row 0 / column 0
    # contributes there, all NaN. Every other fine pixel has coarse (1, 1) among its neighbours.
    assert np.isnan(out[0]).all() and np.isnan(out[:, 0]).all()
    np.testing.assert_array_equal(out[1:, 1:], np.full((3, 3), 5.0, np.float32))
    # A NaN hole in a constant field is filled from the valid neighbours.
    g = np.full((3, 3), 7.0, np.float32)
    g[1, 1] = np.nan
    o = resample_float(g, 24)
    assert not np.isnan(o).any()
    np.testing.assert_allclose(o, 7.0, rtol=1e-6)
    assert np.isnan(resample_float(np.full((2, 2), np.nan, np.float32), 3)).all()


@pytest.mark.gpu
def test_gpu_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(3)
    m = rng.random((37, 41)) < 0.3
    f = rng.random((37, 41)).astype(np.float32)
    f[rng.random(f.shape) < 0.2] = np.nan
    for r in (0, 1, 2):
        g = dilate(cp.asarray(m), r)
        assert isinstance(g, cp.ndarray)
        np.testing.assert_array_equal(g.get(), dilate(m, r))
        np.testing.assert_array_equal(closing(cp.asarray(m), r).get(), closing(m, r))
    for fac, shape in ((24, (880, 980)), (12, (444, 492)), (8, None)):
        g = resample_mask(cp.asarray(m), fac, shape)
        assert isinstance(g, cp.ndarray)
        np.testing.assert_array_equal(g.get(), resample_mask(m, fac, shape))
        gf = resample_float(cp.asarray(f), fac, shape).get()
        np.testing.assert_allclose(gf, resample_float(f, fac, shape), rtol=1e-6, equal_nan=True)


@pytest.mark.gpu
def test_gpu_full_tile_mask_memory():
    import cupy as cp

    rng = np.random.default_rng(4)
    m = rng.random((458, 458)) < 0.1
    pool = cp.get_default_memory_pool()
    pool.free_all_blocks()
    out = resample_mask(cp.asarray(m), 24, (10980, 10980))
    assert out.shape == (10980, 10980)
    # bool output 120 MB; the float32 chunk temporaries stay small (no 480 MB full-size float array).
    assert pool.total_bytes() < 10980 * 10980 + 200 * 2**20
    np.testing.assert_array_equal(out[:2000:7, ::13].get(), resample_mask(m, 24, (10980, 10980))[:2000:7, ::13])

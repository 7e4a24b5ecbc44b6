"""Grid-to-grid resampling: Landsat 30 m snow codes onto an S2 20 m grid by nearest neighbour
(wasp-l3a-and-lis-snow.md §3 "Densification") and 10 m reflectance to 20 m (§2.1), checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpumaja.io.reproject import reproject_codes, resample_reflectance
from gpumaja.model.grids import Grid

CRS = "EPSG:32631"
X0, Y0 = 300000.0, 5000000.0


def test_30m_codes_onto_offset_20m_grid_by_hand():
    src = Grid.from_origin(CRS, X0, Y0, 30.0, 4, 3)
    codes = np.array([[0, 100, 205, 100],
                      [100, 255, 0, 0],
                      [205, 100, 100, 0]], np.uint8)
    # 20 m grid shifted by (+5 m, -5 m): 7 columns x 5 rows, the last column and row outside the source
    dst = Grid.from_origin(CRS, X0 + 5.0, Y0 - 5.0, 20.0, 7, 5)
    # destination centres, metres from the source corner: x = 15, 35, 55, 75, 95, 115, 135 -> source
    # columns 0, 1, 1, 2, 3, 3, outside; y (down) = 15, 35, 55, 75, 95 -> rows 0, 1, 1, 2, outside
    cols = [0, 1, 1, 2, 3, 3, None]
    rows = [0, 1, 1, 2, None]
    expected = np.array([[255 if r is None or c is None else codes[r, c] for c in cols] for r in rows], np.uint8)
    out = reproject_codes(codes, src, dst)
    assert out.dtype == np.uint8 and out.shape == (5, 7)
    np.testing.assert_array_equal(out, expected)
    # the source nodata pixel (row 1, col 1) stays nodata: destination (1..2, 1..2)
    assert (out[1:3, 1:3] == 255).all()


def test_custom_nodata_and_dtype_kept():
    src = Grid.from_origin(CRS, X0, Y0, 30.0, 2, 2)
    # centres 15, 35, 55, 75 m from the source corner -> source pixels 0, 1, 1, outside (60 m wide)
    dst = Grid.from_origin(CRS, X0 + 5.0, Y0 - 5.0, 20.0, 4, 4)
    codes = np.array([[1, 2], [3, 4]], np.int16)
    out = reproject_codes(codes, src, dst, nodata=-1)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, [[1, 2, 2, -1], [3, 4, 4, -1], [3, 4, 4, -1], [-1, -1, -1, -1]])


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9)),
                  elements=st.sampled_from([0, 100, 205, 255])))
def test_identity_and_exact_refinement(codes):
    ny, nx = codes.shape
    src = Grid.from_origin(CRS, X0, Y0, 30.0, nx, ny)
    np.testing.assert_array_equal(reproject_codes(codes, src, src), codes)
    # 30 m -> 15 m on the same corner: every source pixel becomes a 2 x 2 block (centres at 7.5 / 22.5 m)
    fine = Grid.from_origin(CRS, X0, Y0, 15.0, 2 * nx, 2 * ny)
    np.testing.assert_array_equal(reproject_codes(codes, src, fine), np.repeat(np.repeat(codes, 2, 0), 2, 1))


def test_codes_argument_errors():
    src = Grid.from_origin(CRS, X0, Y0, 30.0, 2, 2)
    with pytest.raises(ValueError, match="shape"):
        reproject_codes(np.zeros((3, 2), np.uint8), src, src)
    with pytest.raises(ValueError, match="integers"):
        reproject_codes(np.zeros((2, 2), np.float32), src, src)


# ------------------------------------------------------------------------------------- reflectance
def _grids(n10: int = 8):
    return (Grid.from_origin(CRS, X0, Y0, 10.0, n10, n10), Grid.from_origin(CRS, X0, Y0, 20.0, n10 // 2, n10 // 2))


def test_average_10m_to_20m_is_the_2x2_mean_ignoring_nan():
    g10, g20 = _grids(4)
    a = np.array([[0.1, 0.3, 0.0, 0.0],
                  [0.5, np.nan, 0.2, 0.4],
                  [1.0, 1.0, np.nan, np.nan],
                  [1.0, 1.0, np.nan, np.nan]], np.float32)
    out = resample_reflectance(a, g10, g20, "average")
    assert out.dtype == np.float32
    expected = np.array([[(0.1 + 0.3 + 0.5) / 3, 0.15], [1.0, np.nan]], np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6, equal_nan=True)


def test_cubic_reproduces_a_linear_ramp_inside_and_a_constant_everywhere():
    g10, g20 = _grids(40)
    xs = 5.0 + 10.0 * np.arange(40)  # centres, metres from the corner
    ramp = (0.1 + 2e-4 * xs[None, :] + 1e-4 * xs[:, None]).astype(np.float32)
    out = resample_reflectance(ramp, g10, g20)  # default: cubic, LIS's choice (§2.1)
    xd = 10.0 + 20.0 * np.arange(20)
    expected = 0.1 + 2e-4 * xd[None, :] + 1e-4 * xd[:, None]
    # a symmetric kernel reproduces a linear function away from the edges (4 pixels of margin)
    np.testing.assert_allclose(out[4:-4, 4:-4], expected[4:-4, 4:-4], atol=1e-6)
    const = np.full((40, 40), 0.25, np.float32)
    np.testing.assert_allclose(resample_reflectance(const, g10, g20, "cubic"), 0.25, atol=1e-7)
    np.testing.assert_allclose(resample_reflectance(const, g10, g20, "bilinear"), 0.25, atol=1e-7)


def test_nearest_upsampling_and_outside_footprint_is_nan():
    g10, g20 = _grids(4)
    a = np.array([[0.1, 0.2], [0.3, np.nan]], np.float32)
    out = resample_reflectance(a, g20, g10, "nearest")
    np.testing.assert_array_equal(out, np.repeat(np.repeat(a, 2, 0), 2, 1))
    bigger = Grid.from_origin(CRS, X0, Y0, 20.0, 3, 3)
    out = resample_reflectance(a, g20, bigger, "bilinear")
    assert np.isnan(out[2, :]).all() and np.isnan(out[:, 2]).all()


def test_reflectance_argument_errors():
    g10, g20 = _grids(4)
    with pytest.raises(ValueError, match="method"):
        resample_reflectance(np.zeros((4, 4), np.float32), g10, g20, "lanczos")
    with pytest.raises(ValueError, match="shape"):
        resample_reflectance(np.zeros((2, 4), np.float32), g10, g20)

"""Cast shadows and hidden faces from a DEM, and the cos i flags (maja-l2a.md §1.12, §3.7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpumaja.masks.terrain import occluded, sun_incidence_flags, terrain_flags
from gpumaja.model.params import L2Params

P = L2Params()  # distance_threshold_m = 240
RES = 100.0


def _plateau(h=1050.0, width=10, nx=60, ny=5, start=30):
    z = np.zeros((ny, nx), np.float32)
    z[:, start:start + width] = h
    return z


def _cols(mask):
    """Columns flagged, checking that every row agrees (the DEM varies along columns only)."""
    assert (mask == mask[0]).all()
    return np.where(mask[0])[0].tolist()


def test_flat_dem_no_shadow_no_hidden():
    z = np.full((20, 30), 350.0, np.float32)
    shadow, hidden = terrain_flags(z, 240.0, 80.0, 135.0, 10.0, 100.0, P)
    assert not shadow.any() and not hidden.any()


def test_plateau_cast_shadow_length():
    # Sun in the east (azimuth 90°), elevation 30° (zenith 60°). A pixel n columns west of the plateau
    # edge (column 30 - n) is shaded while H > n · 100 m · tan 30°: 1050 / 57.735 = 18.19 -> n <= 18,
    # i.e. L = H / tan(elevation) = 1818.7 m, 18 pixels: columns 12..29. The pixels at n = 1, 2 meet
    # the plateau also beyond the 240 m distance threshold (it is 10 pixels wide).
    shadow, hidden = terrain_flags(_plateau(), RES, 60.0, 90.0, 0.0, 0.0, P)
    assert _cols(shadow) == list(range(12, 30))
    assert not hidden.any()  # satellite at nadir sees everything


def test_plateau_hidden_faces():
    # Satellite in the west (view azimuth 270°), view zenith 45° (ray rises 1 m per m): pixels east of
    # the plateau (columns 40 + m - 1, distance m · 100 m to its last column) are hidden while
    # 1050 > m · 100 -> m <= 10: columns 40..49 (L = 1050 m).
    shadow, hidden = terrain_flags(_plateau(), RES, 0.0, 0.0, 45.0, 270.0, P)
    assert not shadow.any()
    assert _cols(hidden) == list(range(40, 50))


def test_distance_threshold_ignores_near_terrain():
    # A one-pixel-wide wall at column 30: pixel 30 - n meets it only at distance n · 100 m; with the
    # 240 m threshold, n = 1 and 2 are not flagged (MAJA's Distance_Threshold), n = 3..18 are.
    z = _plateau(width=1)
    shadow, _ = terrain_flags(z, RES, 60.0, 90.0, 0.0, 0.0, P)
    assert _cols(shadow) == list(range(12, 28))
    shadow0, _ = terrain_flags(z, RES, 60.0, 90.0, 0.0, 0.0, P.replace(distance_threshold_m=0.0))
    assert _cols(shadow0) == list(range(12, 30))


def test_max_distance_caps_the_march():
    shadow, _ = terrain_flags(_plateau(), RES, 60.0, 90.0, 0.0, 0.0, P, max_distance_m=1000.0)
    assert _cols(shadow) == list(range(20, 30))  # n <= 10


def test_sloping_plane_self_shadow():
    # Plane rising eastward at 20°. Sun in the east at 10° elevation: the terrain toward the sun rises
    # faster than the ray, so each pixel whose first sample beyond 240 m (k = 3 columns east) is
    # still in the image is shaded: columns 0 .. nx - 4. Sun in the west: nothing.
    nx = 25
    z = np.tile((np.arange(nx) * RES * math.tan(math.radians(20))).astype(np.float32), (4, 1))
    shadow = occluded(z, RES, 80.0, 90.0, P.distance_threshold_m)
    assert _cols(shadow) == list(range(nx - 3))
    assert not occluded(z, RES, 80.0, 270.0, P.distance_threshold_m).any()
    # Sun higher than the slope (elevation 30° > 20°): no shadow.
    assert not occluded(z, RES, 60.0, 90.0, P.distance_threshold_m).any()


def test_north_south_geometry_and_per_pixel_angles():
    # Row 0 is north: a wall in the south (rows 20..24) with the sun due south (azimuth 180°) shades
    # the rows north of it while 450 > n · 100 m · tan 45° -> n <= 4: rows 16..19.
    z = np.zeros((25, 6), np.float32)
    z[20:] = 450.0
    shadow = occluded(z, RES, 45.0, 180.0, 0.0)
    assert (shadow == shadow[:, :1]).all()
    assert np.where(shadow[:, 0])[0].tolist() == [16, 17, 18, 19]
    # The same sun seen from the north (azimuth 0°) shades nothing: the wall is behind.
    assert not occluded(z, RES, 45.0, 0.0, 0.0).any()
    zen = np.full(z.shape, 45.0)
    az = np.full(z.shape, 180.0)
    assert (occluded(z, RES, zen, az, 0.0) == shadow).all()


def test_edge_and_nan():
    z = _plateau()
    edge = np.zeros(z.shape, bool)
    edge[:, 20:25] = True
    shadow, _ = terrain_flags(z, RES, 60.0, 90.0, 0.0, 0.0, P, edge=edge)
    assert _cols(shadow) == [c for c in range(12, 30) if not 20 <= c < 25]
    z[:, 5] = np.nan
    shadow = occluded(z, RES, 60.0, 90.0, P.distance_threshold_m)
    assert not shadow[:, 5].any()
    assert not occluded(np.full((3, 3), np.nan, np.float32), RES, 60.0, 90.0, 0.0).any()


def test_sun_incidence_flags():
    cos_i = np.array([[0.9, 0.19, 0.21, 0.15, -0.1]], np.float32)
    cos_sz = 0.5  # tangent when cos i / 0.5 < 0.2 <=> cos i < 0.1
    too_low, tangent = sun_incidence_flags(cos_i, cos_sz, P)
    assert too_low[0].tolist() == [False, True, False, True, True]
    assert tangent[0].tolist() == [False, False, False, False, True]


@pytest.mark.gpu
def test_gpu_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[0:120, 0:130]
    z = (800 * np.sin(yy / 9.0) * np.cos(xx / 13.0) + 300 * rng.random((120, 130)) + 1000).astype(np.float32)
    for zen, az in ((65.0, 150.0), (30.0, 10.0)):
        want = terrain_flags(z, 240.0, zen, az, 8.0, 100.0, P)
        got = terrain_flags(cp.asarray(z), 240.0, zen, az, 8.0, 100.0, P)
        for g, w in zip(got, want):
            assert isinstance(g, cp.ndarray)
            np.testing.assert_array_equal(g.get(), w)


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.float32, (9, 11), elements=st.floats(0, 3000, width=32)),
       st.floats(5, 85), st.floats(5, 85), st.floats(0, 359))
def test_higher_sun_never_adds_shadow(z, zen_a, zen_b, az):
    low, high = max(zen_a, zen_b), min(zen_a, zen_b)
    s_low = occluded(z, 240.0, low, az, P.distance_threshold_m)
    s_high = occluded(z, 240.0, high, az, P.distance_threshold_m)
    assert (s_high <= s_low).all()

"""Horn slope/aspect: analytic planes, the worked examples of the ESRI documentation, invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.model.grids import Grid
from gpumaja.model.terrain import Terrain, flat_terrain, slope_aspect


def plane(rows: int, cols: int, res: float, rise_east: float, rise_north: float, z0: float = 100.0):
    """z = z0 + rise_east * x + rise_north * y on a north-up array (row 0 is the north edge)."""
    x = np.arange(cols) * res
    y = -np.arange(rows) * res  # going down the rows is going south
    return z0 + rise_east * x[None, :] + rise_north * y[:, None]


@pytest.mark.parametrize("downslope_az", [0, 45, 90, 135, 180, 225, 270, 315, 12.5, 301.0])
def test_plane_facing_each_direction(downslope_az):
    tan_slope = 0.2
    a = math.radians(downslope_az)
    # altitude decreases toward azimuth a: gradient (east, north) = -tan_slope * (sin a, cos a)
    z = plane(9, 11, 30.0, -tan_slope * math.sin(a), -tan_slope * math.cos(a))
    slope, aspect = slope_aspect(z, 30.0)
    assert slope.dtype == np.float32 and aspect.dtype == np.float32
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(slope[inner], math.degrees(math.atan(tan_slope)), atol=1e-4)
    diff = (aspect[inner] - downslope_az + 180.0) % 360.0 - 180.0
    assert np.abs(diff).max() < 1e-3
    assert np.all((aspect >= 0) & (aspect < 360))
    assert np.isfinite(slope).all() and np.isfinite(aspect).all()


def test_rising_east_faces_west_and_45_degrees():
    slope, aspect = slope_aspect(plane(5, 5, 10.0, 1.0, 0.0), 10.0)
    assert slope[2, 2] == pytest.approx(45.0, abs=1e-5)
    assert aspect[2, 2] == pytest.approx(270.0, abs=1e-5)


def test_esri_worked_examples():
    # ArcGIS "How Slope works": cell size 5, rise/run = 3.8003, "slope 75.25" degrees (the page
    # truncates: atan(3.80033) = 75.2577 degrees)
    z = np.array([[50, 45, 50], [30, 30, 30], [8, 10, 10]], float)
    slope, _ = slope_aspect(z, 5.0)
    assert slope[1, 1] == pytest.approx(75.25, abs=0.01)
    assert math.tan(math.radians(float(slope[1, 1]))) == pytest.approx(3.8003, abs=1e-3)
    # ArcGIS "How Aspect works": aspect 92.64 degrees
    z = np.array([[101, 92, 85], [101, 92, 85], [101, 91, 84]], float)
    _, aspect = slope_aspect(z, 5.0)
    assert aspect[1, 1] == pytest.approx(92.64, abs=0.005)


def test_rectangular_pixels():
    z = plane(6, 6, 1.0, 0.0, 0.0)
    z = 100 + 0.1 * (np.arange(6) * 20.0)[None, :] + 0.0 * z  # x pixel 20 m, rises 0.1 m/m east
    slope, aspect = slope_aspect(z, (20.0, 60.0))
    assert slope[2, 2] == pytest.approx(math.degrees(math.atan(0.1)), abs=1e-4)
    assert aspect[2, 2] == pytest.approx(270.0, abs=1e-4)


def test_flat_and_edges():
    slope, aspect = slope_aspect(np.full((4, 7), 321.0), 30.0)
    assert np.all(slope == 0) and np.all(aspect == 0)
    # edge replication: a one-pixel-wide array still gets a finite answer
    s1, a1 = slope_aspect(np.array([[1.0, 2.0, 3.0]]), 1.0)
    assert np.isfinite(s1).all() and np.isfinite(a1).all()
    assert a1[0, 1] == pytest.approx(270.0)


def test_bad_input():
    with pytest.raises(ValueError):
        slope_aspect(np.zeros(5), 30.0)
    with pytest.raises(ValueError):
        slope_aspect(np.zeros((3, 3)), 0.0)


@settings(max_examples=40, deadline=None)
@given(
    ge=st.floats(-2, 2, allow_nan=False), gn=st.floats(-2, 2, allow_nan=False),
    z0=st.floats(-400, 8000, allow_nan=False), res=st.sampled_from([10.0, 20.0, 30.0, 240.0]),
)
def test_plane_properties(ge, gn, z0, res):
    z = plane(6, 7, res, ge, gn, z0)
    slope, aspect = slope_aspect(z, res)
    steep = math.hypot(ge, gn)
    np.testing.assert_allclose(slope[1:-1, 1:-1], math.degrees(math.atan(steep)), atol=1e-3)
    if steep > 1e-3:
        want = math.degrees(math.atan2(-ge, -gn)) % 360
        diff = (aspect[1:-1, 1:-1] - want + 180) % 360 - 180
        assert np.abs(diff).max() < 0.05
        # rotating the terrain 90 degrees counter-clockwise turns the aspect by -90
        _, rot = slope_aspect(np.rot90(z), res)
        d2 = (rot[1:-1, 1:-1] - (want - 90) + 180) % 360 - 180
        assert np.abs(d2).max() < 0.05


def test_terrain_dataclass():
    g = Grid.from_origin("EPSG:32631", 300000, 4900000, 240.0, 5, 4)
    t = flat_terrain(g)
    assert t.is_flat and t.source == "flat"
    assert t.altitude.shape == (4, 5) and t.altitude.dtype == np.float32
    assert np.all(t.altitude == 0) and np.all(t.slope == 0) and np.all(t.aspect == 0)
    with pytest.raises(ValueError):
        z45 = np.zeros((4, 5), np.float32)
        Terrain(np.zeros((3, 3), np.float32), z45, z45, g, "x")

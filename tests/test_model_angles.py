"""Angle grids interpolated onto a processing grid (model.angles.angles_on_grid)."""

from __future__ import annotations

import numpy as np
import pytest

from gpumaja.model.angles import AngleGrid, angles_on_grid
from gpumaja.model.grids import Grid

CRS = "EPSG:32631"


def _angle_grid(zen, az):
    # 5 km cells whose centres sit at x = 0, 5000, 10000 ... (UL corner shifted half a cell, as io/safe.py)
    zen, az = np.asarray(zen, np.float32), np.asarray(az, np.float32)
    g = Grid.from_origin(CRS, -2500.0, 2500.0, 5000.0, zen.shape[1], zen.shape[0])
    return AngleGrid(zen, az, g)


def test_linear_field_is_reproduced_at_cell_centres():
    # zenith = 10 + 2 * column index; a 2500 m grid has centres at x = 1250, 3750, ... -> column 0.25, 0.75 ...
    zen = np.tile(10 + 2 * np.arange(4.0), (3, 1))
    ag = _angle_grid(zen, np.full((3, 4), 100.0))
    grid = Grid.from_origin(CRS, 0.0, 0.0, 2500.0, 6, 2)
    z, a = angles_on_grid(ag, grid)
    expected = 10 + 2 * ((np.arange(6) + 0.5) * 2500 / 5000)
    np.testing.assert_allclose(z[0], expected, rtol=1e-6)
    np.testing.assert_allclose(a, 100.0, rtol=1e-6)


def test_clamped_outside_and_azimuth_wraps():
    ag = _angle_grid(np.array([[20.0, 40.0]]), np.array([[350.0, 10.0]]))
    grid = Grid.from_origin(CRS, -11250.0, 0.0, 2500.0, 9, 1)  # centres -10000 ... 10000, step 2500
    z, a = angles_on_grid(ag, grid)
    assert z[0, 0] == pytest.approx(20.0) and z[0, -1] == pytest.approx(40.0)
    mid = 5  # x = 2500, halfway between the two angle-grid centres
    assert min(a[0, mid], 360 - a[0, mid]) < 1e-3  # halfway between 350 and 10 is 0, not 180
    assert np.all((a >= 0) & (a < 360))


def test_crs_mismatch():
    ag = _angle_grid(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="CRS"):
        angles_on_grid(ag, Grid.from_origin("EPSG:32632", 0, 0, 100, 2, 2))

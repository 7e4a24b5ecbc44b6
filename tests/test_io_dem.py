"""DEM reader: reprojection onto a processing grid, slope/aspect of known planes, coverage rules.

The DEM GeoTIFFs are written here in EPSG:4326 and hold a plane defined in the *target* UTM
coordinates, z = Z0 + GX * (x - XC) + GY * (y - YC), sampled at each DEM pixel centre (whose UTM
coordinates this test computes with rasterio.warp.transform). Brought back onto the UTM grid, the
altitude must be that plane, and its Horn slope/aspect the plane's analytic atan(|g|) and downslope
azimuth atan2(-GX, -GY).

Tolerances: bilinear interpolation reproduces a plane exactly, and over one DEM pixel (~20 m) the
UTM <-> lon/lat mapping departs from affine by ~(20 m)^2 / 6400 km, i.e. nanometres. What remains is
GDAL's approximate transformer (linear between exact points, error bounded at 0.125 DEM pixel: up to
0.125 * 22 m * |g| = 0.27 m for |g| = 0.1, in practice a few cm here) and float32 altitudes (6e-5 m at
1000 m). On the 30 m grid we check altitude to 0.05 m, slope to 0.01 deg and aspect to 0.05 deg: a
half-pixel shift would cost 1.5 m, a 1 % pixel-size error 0.06 deg of slope. On a 240 m grid GDAL
widens the bilinear kernel to the pixel ratio (an average of ~100 DEM pixels, symmetric up to one DEM
pixel), so 0.1 m / 0.02 deg / 0.1 deg there.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_bounds

from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.dem import load_terrain, read_dem
from gpumaja.model.grids import Grid

GRID = Grid.from_origin("EPSG:32631", 480000.0, 4990000.0, 30.0, 100, 80)  # 3 km x 2.4 km, near 45 N
XC, YC, Z0 = 481500.0, 4988800.0, 600.0
DEM_RES_DEG = 0.0002


def write_dem(path: Path, gx: float, gy: float, *, margin_deg: float = 0.01, nodata=None,
              void_box=None, bounds=None, dtype="float32", z0: float = Z0) -> Path:
    """A lon/lat GeoTIFF holding the plane z0 + gx (x - XC) + gy (y - YC) in GRID's UTM coordinates."""
    if bounds is None:
        w, s, e, n = transform_bounds(GRID.crs, "EPSG:4326", *GRID.bounds, densify_pts=21)
        bounds = (w - margin_deg, s - margin_deg, e + margin_deg, n + margin_deg)
    w, s, e, n = bounds
    cols, rows = round((e - w) / DEM_RES_DEG), round((n - s) / DEM_RES_DEG)
    lon = w + (np.arange(cols) + 0.5) * DEM_RES_DEG
    lat = n - (np.arange(rows) + 0.5) * DEM_RES_DEG
    LON, LAT = np.meshgrid(lon, lat)
    x, y = warp_transform("EPSG:4326", GRID.crs, LON.ravel().tolist(), LAT.ravel().tolist())
    z = z0 + gx * (np.asarray(x) - XC) + gy * (np.asarray(y) - YC)
    z = z.reshape(rows, cols)
    if void_box is not None:
        r0, r1, c0, c1 = void_box
        z[r0:r1, c0:c1] = nodata
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype=dtype,
                       crs="EPSG:4326", transform=Affine(DEM_RES_DEG, 0, w, 0, -DEM_RES_DEG, n),
                       nodata=nodata) as ds:
        ds.write(z.astype(dtype), 1)
    return path


def grid_xy(row: int, col: int) -> tuple[float, float]:
    t = GRID.transform
    return t.c + (col + 0.5) * t.a, t.f + (row + 0.5) * t.e


@pytest.mark.parametrize("res, tol_z, tol_deg_slope, tol_deg_aspect", [(30.0, 0.05, 0.01, 0.05),
                                                                     (240.0, 0.1, 0.02, 0.1)])
@pytest.mark.parametrize("gx, gy", [(0.1, 0.0), (0.05, -0.05), (-0.03, 0.08)])
def test_tilted_plane_lonlat_to_utm(tmp_path, gx, gy, res, tol_z, tol_deg_slope, tol_deg_aspect):
    grid = GRID if res == 30.0 else GRID.coarsen(res)
    dem = write_dem(tmp_path / "dem.tif", gx, gy, margin_deg=0.02)
    t = read_dem(dem, grid)
    assert t.grid == grid and t.source == str(dem)
    assert t.altitude.shape == grid.shape and t.altitude.dtype == np.float32
    rows, cols = grid.shape
    points = [(0, 0), (rows // 3, cols // 4), (rows // 2, cols // 2), (rows - 1, cols - 1), (rows - 2, 1)]
    for row, col in points:
        x = grid.transform.c + (col + 0.5) * grid.transform.a
        y = grid.transform.f + (row + 0.5) * grid.transform.e
        assert t.altitude[row, col] == pytest.approx(Z0 + gx * (x - XC) + gy * (y - YC), abs=tol_z)
    inner = (slice(1, -1), slice(1, -1))
    slope_expected = math.degrees(math.atan(math.hypot(gx, gy)))
    aspect_expected = math.degrees(math.atan2(-gx, -gy)) % 360.0
    assert np.abs(t.slope[inner] - slope_expected).max() < tol_deg_slope
    diff = (t.aspect[inner] - aspect_expected + 180.0) % 360.0 - 180.0
    assert np.abs(diff).max() < tol_deg_aspect


def test_rising_east_faces_west(tmp_path):
    t = read_dem(write_dem(tmp_path / "dem.tif", 0.1, 0.0), GRID)
    assert np.abs(t.aspect[1:-1, 1:-1] - 270.0).max() < 0.05
    assert np.median(t.slope) == pytest.approx(5.7106, abs=0.01)  # atan(0.1)


def test_flat_dem(tmp_path):
    t = read_dem(write_dem(tmp_path / "dem.tif", 0.0, 0.0, z0=250.0), GRID)
    assert np.allclose(t.altitude, 250.0)
    assert np.all(t.slope == 0.0) and np.all(t.aspect == 0.0)


def test_integer_dem_same_crs(tmp_path):
    # int16 DEM already on a UTM 30 m grid, offset by half a pixel: bilinear of a linear ramp
    path = tmp_path / "int.tif"
    x = np.arange(160) * 30.0 + 479000.0  # pixel centres of the DEM below
    z = (200 + 0.2 * (x - 479000.0)).astype(np.int16)[None, :].repeat(110, axis=0)
    with rasterio.open(path, "w", driver="GTiff", width=160, height=110, count=1, dtype="int16",
                       crs="EPSG:32631", transform=Affine(30, 0, 478985.0, 0, -30, 4990500.0)) as ds:
        ds.write(z, 1)
    t = read_dem(path, GRID)
    x0, _ = grid_xy(5, 7)
    # DEM values are whole metres, so the ramp is exact
    assert t.altitude[5, 7] == pytest.approx(200 + 0.2 * (x0 - 479000.0), abs=0.01)
    assert np.median(t.aspect) == pytest.approx(270.0, abs=0.5)


def test_none_is_flat_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="gpumaja.io.dem"):
        t = load_terrain(None, GRID)
    assert t.is_flat and t.grid == GRID
    assert np.all(t.altitude == 0) and np.all(t.slope == 0)
    msg = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "MAJA needs a DEM" in msg and "0 m" in msg and "FRE" in msg and "sea level" in msg


def test_load_terrain_with_path(tmp_path):
    dem = write_dem(tmp_path / "dem.tif", 0.0, 0.1)
    t = load_terrain(str(dem), GRID)
    assert np.median(t.aspect) == pytest.approx(180.0, abs=0.05)  # rises north, faces south


def test_dem_elsewhere(tmp_path):
    dem = write_dem(tmp_path / "far.tif", 0.0, 0.0, bounds=(10.0, 40.0, 10.05, 40.05))
    with pytest.raises(InputError) as err:
        read_dem(dem, GRID)
    assert "far.tif" in str(err.value) and "bounds" in str(err.value)


def test_dem_partial_coverage(tmp_path):
    w, s, e, n = transform_bounds(GRID.crs, "EPSG:4326", *GRID.bounds, densify_pts=21)
    dem = write_dem(tmp_path / "half.tif", 0.0, 0.0, bounds=(w - 0.01, s - 0.01, (w + e) / 2, n + 0.01))
    with pytest.raises(InputError) as err:
        read_dem(dem, GRID)
    assert "half.tif" in str(err.value) and "covers only" in str(err.value)


def test_dem_voids_are_filled_with_warning(tmp_path, caplog):
    # a void of the DEM's own nodata value, well inside the grid
    dem = write_dem(tmp_path / "void.tif", 0.1, 0.0, nodata=-32768.0, void_box=(70, 80, 90, 100))
    with caplog.at_level(logging.WARNING, logger="gpumaja.io.dem"):
        t = read_dem(dem, GRID)
    assert any("nearest" in r.getMessage() for r in caplog.records)
    assert np.isfinite(t.altitude).all()
    assert t.altitude.min() > Z0 - 0.1 * 1600 and t.altitude.max() < Z0 + 0.1 * 1600  # no -32768 leaks


def test_undeclared_srtm_voids_are_filled(tmp_path, caplog):
    dem = write_dem(tmp_path / "void.tif", 0.0, 0.0, nodata=-32768.0, void_box=(70, 75, 90, 95), z0=300.0)
    with rasterio.open(dem, "r+") as ds:
        ds.nodata = None
    with caplog.at_level(logging.WARNING, logger="gpumaja.io.dem"):
        t = read_dem(dem, GRID)
    assert np.allclose(t.altitude, 300.0)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_missing_and_corrupt(tmp_path):
    with pytest.raises(MissingFileError, match="nope.tif"):
        read_dem(tmp_path / "nope.tif", GRID)
    with pytest.raises(MissingFileError):
        load_terrain(str(tmp_path / "nope.tif"), GRID)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"this is not a raster")
    with pytest.raises(CorruptFileError, match="bad.tif"):
        read_dem(bad, GRID)
    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(nocrs, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32") as ds:
        ds.write(np.zeros((4, 4), np.float32), 1)
    with pytest.raises(CorruptFileError, match="CRS"):
        read_dem(nocrs, GRID)

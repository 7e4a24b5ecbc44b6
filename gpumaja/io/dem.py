"""DEM reader: any raster GDAL reads, in any CRS, brought onto a processing grid -> `Terrain`.

The DEM's band 1 is reprojected (bilinear; see read_dem for the kernel width) onto the target grid
with rasterio.warp.reproject, reading only the window of the DEM that covers the grid (so a large
regional DEM is fine). Slope and aspect are then computed on the target grid
(`gpumaja.model.terrain.slope_aspect`, Horn 3x3), with the grid's pixel size in metres.

Coverage rules: the DEM's extent must cover at least MIN_COVERAGE (99 %) of the grid's pixels, else
InputError naming the file and the grid bounds (a DEM of the wrong place is a user mistake, not
something to paper over). Inside the extent, DEM voids (its nodata value, NaN, or altitudes below
-1000 m, i.e. SRTM's -32768 where no nodata is declared) and the thin uncovered rim are filled with
the nearest valid altitude, with a warning giving the filled fraction.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from affine import Affine

from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.model.angles import fill_nan_nearest
from gpumaja.model.grids import Grid
from gpumaja.model.terrain import Terrain, flat_terrain, slope_aspect

log = logging.getLogger(__name__)

MIN_COVERAGE = 0.99
MIN_VALID_ALTITUDE_M = -1000.0  # lowest land is the Dead Sea shore, about -430 m


def _pixel_size_m(crs_in, transform, centre_lat: float) -> tuple[float, float]:
    """(x, y) pixel size in metres; geographic CRSs use the local degree length at `centre_lat`."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    xres, yres = abs(transform.a), abs(transform.e)
    crs = CRS.from_user_input(crs_in)
    if crs.is_geographic:
        lat = math.radians(centre_lat)
        return xres * 111320.0 * math.cos(lat), yres * 110574.0
    try:
        factor = crs.linear_units_factor[1]
    except CRSError:  # no linear unit known: take map units as metres
        factor = 1.0
    return xres * factor, yres * factor


def _grid_centre_lat(grid: Grid) -> float:
    from rasterio.warp import transform as warp_transform

    left, bottom, right, top = grid.bounds
    _, (lat,) = warp_transform(grid.crs, "EPSG:4326", [(left + right) / 2.0], [(bottom + top) / 2.0])
    return float(lat)


def read_dem(path: str | Path, grid: Grid) -> Terrain:
    """Altitude (bilinear), slope and aspect of the DEM at `path` on `grid`."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject, transform_bounds
    from rasterio.windows import Window, from_bounds

    path = Path(path)
    if not str(path).startswith("/vsi") and not path.is_file():
        raise MissingFileError("DEM file not found", path)
    rounded = tuple(round(b, 3) for b in grid.bounds)
    bounds_txt = f"grid {grid.crs} bounds (left, bottom, right, top) = {rounded}"
    try:
        ds = rasterio.open(path)
    except Exception as exc:
        raise CorruptFileError(f"cannot read the DEM as a raster: {exc}", path) from exc
    with ds:
        if ds.crs is None:
            raise CorruptFileError("DEM has no CRS (georeferencing) to reproject from", path)
        # Window of the DEM covering the grid, with a margin for the bilinear kernel (which GDAL widens
        # to the grid/DEM pixel ratio when the grid is coarser).
        try:
            centre_lat = _grid_centre_lat(grid)
            grid_px = _pixel_size_m(grid.crs, grid.transform, centre_lat)
            dem_px = _pixel_size_m(ds.crs, ds.transform, centre_lat)
            gl, gb, gr, gt = transform_bounds(grid.crs, ds.crs, *grid.bounds, densify_pts=21)
            win = from_bounds(gl, gb, gr, gt, transform=ds.transform)
        except Exception as exc:
            raise InputError(f"DEM cannot be related to the {bounds_txt}: {exc}", path) from exc
        margin = 2 + math.ceil(2.0 * max(grid_px) / min(dem_px))
        full = Window(0, 0, ds.width, ds.height)
        win = Window(math.floor(win.col_off) - margin, math.floor(win.row_off) - margin,
                     math.ceil(win.width) + 2 * margin + 1, math.ceil(win.height) + 2 * margin + 1)
        try:
            win = win.intersection(full)
        except Exception as exc:  # WindowError: no overlap
            raise InputError(f"DEM does not cover the {bounds_txt} at all", path) from exc
        if win.width <= 0 or win.height <= 0:
            raise InputError(f"DEM does not cover the {bounds_txt} at all", path)
        try:
            src = ds.read(1, window=win).astype(np.float32)
        except Exception as exc:
            raise CorruptFileError(f"cannot decode the DEM: {exc}", path) from exc
        src_transform = ds.transform @ Affine.translation(win.col_off, win.row_off)
        src_crs = ds.crs
        nodata = ds.nodata

    void = ~np.isfinite(src) | (src < MIN_VALID_ALTITUDE_M)
    if nodata is not None and not math.isnan(nodata):
        void |= src == np.float32(nodata)
    src[void] = np.nan

    # Extent coverage: reproject a mask of ones (nearest) from the read window.
    extent = np.zeros(grid.shape, np.uint8)
    reproject(np.ones(src.shape, np.uint8), extent, src_transform=src_transform, src_crs=src_crs,
              src_nodata=None, dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=0,
              resampling=Resampling.nearest)
    coverage = float(extent.mean())
    if coverage == 0.0:
        raise InputError(f"DEM does not cover the {bounds_txt} at all", path)
    if coverage < MIN_COVERAGE:
        raise InputError(
            f"DEM covers only {coverage:.1%} of the {bounds_txt} (at least {MIN_COVERAGE:.0%} needed)", path)

    # Bilinear. Where a grid pixel spans less than 2 DEM pixels, plain bilinear interpolation
    # (XSCALE/YSCALE = 1): GDAL's default widens the kernel by the scale ratio, which on a DEM only
    # slightly finer than the grid ripples a plane's gradient by ~0.5 %. Where the grid is much coarser,
    # GDAL's widened (anti-aliasing) bilinear kernel averages the DEM under each grid pixel.
    scale_opts = {"XSCALE": 1, "YSCALE": 1} if min(grid_px) < 2.0 * max(dem_px) else {}
    altitude = np.full(grid.shape, np.nan, np.float32)
    reproject(src, altitude, src_transform=src_transform, src_crs=src_crs, src_nodata=np.nan,
              dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan,
              resampling=Resampling.bilinear, **scale_opts)
    missing = ~np.isfinite(altitude)
    if missing.all():
        raise InputError(f"DEM holds no valid altitude over the {bounds_txt}", path)
    if missing.any():
        log.warning("%s: %.2f%% of the grid's DEM pixels are voids or outside the DEM; filled with the "
                    "nearest valid altitude", path, 100.0 * missing.mean())
        altitude = fill_nan_nearest(altitude)
    slope, aspect = slope_aspect(altitude, grid_px)
    return Terrain(altitude.astype(np.float32), slope, aspect, grid, str(path))


def load_terrain(path: str | Path | None, grid: Grid) -> Terrain:
    """Terrain for `grid` from the DEM at `path`, or flat sea-level terrain (with a warning) when None."""
    if path is None:
        log.warning(
            "no DEM given: MAJA needs a DEM (terrain correction, pressure from altitude); proceeding "
            "with flat 0 m terrain, so the slope-corrected reflectance FRE equals SRE and the pressure "
            "is at sea level everywhere")
        return flat_terrain(grid)
    return read_dem(path, grid)

"""Put a raster of one grid onto another: class codes by nearest neighbour, reflectance by GDAL kernels.

Two uses in the snow chain (wasp-l3a-and-lis-snow.md):

- `reproject_codes`: Landsat 30 m snow maps onto the Sentinel-2 20 m tile grid before the snow cover
  duration synthesis (§3 "Densification": OTB Superimpose, nearest neighbour, 255 outside the
  footprint). Codes are never mixed: every destination pixel takes the code of the source pixel
  under its centre, or `nodata` when its centre falls outside the source footprint.
- `resample_reflectance`: the 10 m green and red bands onto the 20 m SWIR grid (§2.1: LIS resamples
  them with GDAL's cubic kernel). NaN is the no-data value on both sides. GDAL leaves no-data source
  pixels out of every kernel (weights renormalised over the valid ones); it writes NaN outside the
  source footprint, where no valid source pixel contributes, and, for the cubic and bilinear
  kernels, where the source pixel under the destination pixel centre is itself no data.

Both wrap `rasterio.warp.reproject` (GDAL's warper), so source and destination may be in different
CRSs. The warper's approximate transformer is switched off (`tolerance=0`): pixel centres are
transformed exactly, so a code map lands where the grids say it should.
"""

from __future__ import annotations

import numpy as np
from rasterio.warp import Resampling, reproject

from gpumaja.model.grids import Grid

REFLECTANCE_METHODS = ("cubic", "average", "nearest", "bilinear")


def _check(array: np.ndarray, src: Grid, what: str) -> np.ndarray:
    a = np.asarray(array)
    if a.shape != src.shape:
        raise ValueError(f"{what} has shape {a.shape}, the source grid is {src.shape}")
    return a


def reproject_codes(codes: np.ndarray, src: Grid, dst: Grid, nodata: int = 255) -> np.ndarray:
    """Class codes (any integer dtype, shape `src.shape`) on `dst` by nearest neighbour, same dtype;
    `nodata` where a destination pixel centre lies outside the source footprint. Source pixels equal
    to `nodata` stay `nodata` (wasp-l3a-and-lis-snow.md §3 "Densification")."""
    a = _check(codes, src, "codes")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"codes must be integers, got {a.dtype}")
    out = np.full(dst.shape, nodata, dtype=a.dtype)
    reproject(
        source=np.ascontiguousarray(a), destination=out,
        src_transform=src.transform, src_crs=src.crs, src_nodata=nodata,
        dst_transform=dst.transform, dst_crs=dst.crs, dst_nodata=nodata,
        resampling=Resampling.nearest, tolerance=0.0,
    )
    return out


def resample_reflectance(a: np.ndarray, src: Grid, dst: Grid, method: str = "cubic") -> np.ndarray:
    """float32 reflectance (NaN = no data, shape `src.shape`) on `dst` with GDAL's `method` kernel:
    "cubic" (LIS's choice for 10 m -> 20 m, wasp-l3a-and-lis-snow.md §2.1), "average", "nearest" or
    "bilinear". NaN outside the source footprint, where no valid source pixel contributes and
    (cubic, bilinear) where the source pixel under the destination centre is NaN (see the module doc)."""
    if method not in REFLECTANCE_METHODS:
        raise ValueError(f"method must be one of {REFLECTANCE_METHODS}, got {method!r}")
    values = _check(a, src, "reflectance").astype(np.float32, copy=False)
    out = np.full(dst.shape, np.nan, dtype=np.float32)
    reproject(
        source=np.ascontiguousarray(values), destination=out,
        src_transform=src.transform, src_crs=src.crs, src_nodata=np.nan,
        dst_transform=dst.transform, dst_crs=dst.crs, dst_nodata=np.nan,
        resampling=Resampling[method], tolerance=0.0,
    )
    return out


__all__ = ["REFLECTANCE_METHODS", "reproject_codes", "resample_reflectance"]

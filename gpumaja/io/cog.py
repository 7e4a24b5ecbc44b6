"""Cloud-Optimized GeoTIFF writing and checking.

Every raster of a MUSCATE product gpumaja writes (maja-l2a.md §5) is a COG: tiled, DEFLATE-compressed,
with internal overviews when the raster is larger than one block, so that a viewer or a cloud reader
(GDAL /vsicurl/, stackstac, odc-stac) fetches only the blocks and the overview level it needs.

Choices:
- Block size: 512 px when the raster's larger side is at least 2048 px, else 256 px (a small crop or
  a 240 m coarse grid is then not one mostly-empty 512 px block).
- Predictor: horizontal differencing (GDAL PREDICTOR=YES: 2 for integers, 3 for floats) on reflectance-
  like data; none on uint8 bit masks, where it scrambles the bit patterns DEFLATE compresses best.
- Overviews: GDAL's COG driver with OVERVIEWS=AUTO adds levels (factor 2, 4, ...) until the smallest
  fits in one block; `resampling` is "average" for physical values (nodata pixels are left out of the
  average) and "nearest" for bit masks, whose values must never be mixed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import rasterio

from gpumaja.model.grids import Grid

log = logging.getLogger(__name__)

RESAMPLINGS = ("average", "nearest")
SMALL_BLOCK = 256
LARGE_BLOCK = 512
LARGE_RASTER_SIDE = 2048  # rasters whose larger side reaches this get 512 px blocks


def block_size(height: int, width: int) -> int:
    """Tile size for a raster of this shape (see the module docstring)."""
    return LARGE_BLOCK if max(height, width) >= LARGE_RASTER_SIDE else SMALL_BLOCK


def _predictor(dtype: np.dtype) -> str:
    return "NO" if np.dtype(dtype) == np.uint8 else "YES"


def write_cog(
    path: str | os.PathLike,
    array: np.ndarray,
    grid: Grid,
    dtype: str | np.dtype,
    nodata: float | None,
    resampling: str = "average",
    band_descriptions: list[str] | tuple[str, ...] | None = None,
) -> Path:
    """Write `array` ((nb, ny, nx) or (ny, nx)) on `grid` as a Cloud-Optimized GeoTIFF.

    The array is cast to `dtype` without rescaling (the caller quantifies). `nodata` is recorded in
    the file (None: no nodata value, e.g. for bit masks). Raises ValueError for a shape that does not
    match the grid or an unknown resampling; GDAL errors propagate as rasterio errors.
    """
    if resampling not in RESAMPLINGS:
        raise ValueError(f"resampling must be one of {RESAMPLINGS}, got {resampling!r}")
    data = np.asarray(array)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3 or data.shape[1:] != grid.shape:
        raise ValueError(f"{path}: array shape {np.shape(array)} does not match the grid {grid.shape}")
    dtype = np.dtype(dtype)
    if band_descriptions is not None and len(band_descriptions) != data.shape[0]:
        raise ValueError(f"{path}: {len(band_descriptions)} band descriptions for {data.shape[0]} bands")
    path = Path(path)
    profile = {
        "driver": "COG",
        "width": grid.width,
        "height": grid.height,
        "count": data.shape[0],
        "dtype": dtype.name,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        # COG driver creation options (GDAL >= 3.1)
        "BLOCKSIZE": block_size(*grid.shape),
        "COMPRESS": "DEFLATE",
        "PREDICTOR": _predictor(dtype),
        "OVERVIEWS": "AUTO",
        "OVERVIEW_RESAMPLING": resampling.upper(),
        "NUM_THREADS": "ALL_CPUS",  # DEFLATE of the blocks in parallel (same bytes as one thread)
    }
    # rasterio buffers a copy-only driver (COG) in a MEM dataset and calls CreateCopy on close.
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(dtype, copy=False))
        for i, text in enumerate(band_descriptions or (), start=1):
            dst.set_band_description(i, text)
    log.debug("wrote COG %s (%d band(s), %s, %dx%d)", path, data.shape[0], dtype.name, grid.width,
              grid.height)
    return path


def _basic_cog_check(path: str | os.PathLike) -> tuple[bool, list[str], list[str]]:
    """Minimal COG check without rio-cogeo: a tiled GeoTIFF whose IFDs GDAL laid out as a COG
    (IMAGE_STRUCTURE LAYOUT=COG, GDAL >= 3.1), with overviews when larger than one block."""
    errors: list[str] = []
    warnings: list[str] = []
    with rasterio.open(path) as ds:
        if ds.driver != "GTiff":
            errors.append(f"driver is {ds.driver}, not GTiff")
        if ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT", "").upper() != "COG":
            errors.append("GDAL does not report LAYOUT=COG (IFDs or blocks not in COG order)")
        if not ds.profile.get("tiled", False):
            bh, bw = ds.block_shapes[0]
            errors.append(f"not tiled (blocks of {bh}x{bw} px)")
        if max(ds.width, ds.height) > LARGE_BLOCK and not ds.overviews(1):
            warnings.append("larger than 512 px without internal overviews")
        if ds.compression is None:
            warnings.append("not compressed")
    return not errors, errors, warnings


def validate_cog(path: str | os.PathLike) -> tuple[bool, list[str], list[str]]:
    """(ok, errors, warnings) for a file: rio-cogeo's `cog_validate` when installed, else a minimal
    check (tiled GeoTIFF, COG layout reported by GDAL, overviews when large)."""
    try:
        from rio_cogeo.cogeo import cog_validate
    except ImportError:
        return _basic_cog_check(path)
    ok, errors, warnings = cog_validate(str(path), quiet=True)
    return bool(ok), list(errors), list(warnings)


__all__ = ["block_size", "validate_cog", "write_cog"]

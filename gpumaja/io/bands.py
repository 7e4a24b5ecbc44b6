"""Band pixels: digital numbers of one band on its resolution group's grid.

`read_dn` works for every `L1CProduct` (S2 JP2 in a folder or a zip, Landsat GeoTIFF): it opens the
band file with rasterio for each call (`read_source`: no dataset is shared, so calls may run in
threads, e.g. the decode pool of `io.decode`), reads it (or takes its DN from a
`io.transcode_cache.TranscodeCache`) and, when the file is not on the group grid, resamples it onto
that grid: an average ignoring the no-data DN when the grid is coarser (e.g. the 10 m crops of a
windowed SAFE brought to 20/60 m), the nearest pixel when it is finer.
"""

from __future__ import annotations

import math
import os

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject

from gpumaja.errors import CorruptFileError, GpumajaError, MissingFileError
from gpumaja.model.bands import band as band_info
from gpumaja.model.grids import Grid
from gpumaja.model.product import L1CProduct

ACCEPTED_DTYPES = ("uint16", "int16", "uint8")


def crs_string(crs) -> str:
    """'EPSG:n' when the CRS has an EPSG code, else its WKT (the form Grid.crs uses)."""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def grid_of(ds, label: str | os.PathLike) -> Grid:
    """The Grid of an open rasterio dataset; CorruptFileError naming `label` if it has none."""
    if ds.crs is None:
        raise CorruptFileError("the file has no coordinate reference system", label)
    try:
        return Grid(crs_string(ds.crs), ds.transform, ds.width, ds.height)
    except ValueError as exc:  # rotated or south-up transform
        raise CorruptFileError(f"unsupported georeferencing: {exc}", label) from exc


def _open_error(path: str, exc: Exception) -> GpumajaError:
    text = str(exc)
    if (not path.startswith("/vsi") and not os.path.exists(path)) or "No such file" in text:
        return MissingFileError("file not found", path)
    return CorruptFileError(f"cannot read raster: {text}", path)


def file_grid(path: str) -> Grid:
    """The grid of a raster file, from its header only (no pixel is read)."""
    try:
        with rasterio.open(path) as ds:
            return grid_of(ds, path)
    except GpumajaError:
        raise
    except Exception as exc:  # RasterioIOError, CPLE_* errors
        raise _open_error(path, exc) from exc


def read_source(path: str) -> tuple[np.ndarray, Grid]:
    """The DN of a one-band raster file as uint16 and the file's own grid (one full decode)."""
    try:
        with rasterio.open(path) as ds:
            if ds.count != 1:
                raise CorruptFileError(f"expected 1 band, the file has {ds.count}", path)
            if ds.dtypes[0] not in ACCEPTED_DTYPES:
                raise CorruptFileError(f"expected 16-bit integer DN, the file holds {ds.dtypes[0]}", path)
            src = grid_of(ds, path)
            data = ds.read(1)  # GDAL may only notice a truncated JP2 here
    except GpumajaError:
        raise
    except Exception as exc:
        raise _open_error(path, exc) from exc
    if data.dtype == np.int16:
        data = data.view(np.uint16)  # DN above 32767 stored in a signed container
    return data.astype(np.uint16, copy=False), src


def band_source(product: L1CProduct, band: str) -> tuple[str, Grid]:
    """(band file, grid of its resolution group) of `band` in `product`."""
    try:
        path = product.band_files[band]
    except KeyError:
        raise KeyError(f"{product.product_id} has no band {band!r}") from None
    return path, product.grids[band_info(product.sensor, band).group]


def on_grid(data: np.ndarray, src: Grid, target: Grid, nodata: int, path: str) -> np.ndarray:
    """DN `data` read on `src` brought onto `target` (unchanged when the grids are equal)."""
    if src == target:
        return data
    try:
        return resample_dn(data, src, target, nodata)
    except Exception as exc:
        raise CorruptFileError(f"cannot resample onto {target}: {exc}", path) from exc


def read_dn(product: L1CProduct, band: str, cache=None) -> np.ndarray:
    """DN of `band` as uint16, shape `product.grids[group].shape`, on exactly that grid. `cache`: a
    `TranscodeCache` (or anything with its `read(source, decode)`) the file's DN come from."""
    path, target = band_source(product, band)
    data, src = cache.read(path, read_source) if cache is not None else read_source(path)
    return on_grid(data, src, target, product.nodata_dn, path)


def _block_factor(src: Grid, dst: Grid) -> tuple[int, int, int] | None:
    """(k, row0, col0) when dst is src coarsened by an integer k on aligned pixels, inside src."""
    if src.crs != dst.crs:
        return None
    ratio = dst.resolution / src.resolution
    k = round(ratio)
    if k < 2 or not math.isclose(ratio, k, rel_tol=0, abs_tol=1e-9):
        return None
    if not math.isclose(abs(dst.transform.e), dst.resolution) or not math.isclose(
        abs(src.transform.e), src.resolution
    ):
        return None
    col0 = (dst.transform.c - src.transform.c) / src.resolution
    row0 = (src.transform.f - dst.transform.f) / src.resolution
    c0, r0 = round(col0), round(row0)
    if not (math.isclose(col0, c0, abs_tol=1e-6) and math.isclose(row0, r0, abs_tol=1e-6)):
        return None
    if c0 < 0 or r0 < 0 or c0 + dst.width * k > src.width or r0 + dst.height * k > src.height:
        return None
    return k, r0, c0


def resample_dn(data: np.ndarray, src: Grid, dst: Grid, nodata: int = 0) -> np.ndarray:
    """uint16 DN on `src` brought onto `dst`: average ignoring `nodata` when coarser, nearest otherwise.

    Averages are rounded half up; a target pixel with no valid source pixel is `nodata`.
    """
    block = _block_factor(src, dst)
    if block is not None:
        k, r0, c0 = block
        sub = data[r0 : r0 + dst.height * k, c0 : c0 + dst.width * k].reshape(dst.height, k, dst.width, k)
        valid = sub != nodata
        total = np.where(valid, sub, 0).sum(axis=(1, 3), dtype=np.float64)
        count = valid.sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.floor(total / count + 0.5)
        return np.where(count > 0, mean, nodata).astype(np.uint16)
    out = np.full(dst.shape, nodata, np.uint16)
    coarser = dst.resolution > src.resolution * (1 + 1e-9)
    reproject(
        source=data,
        destination=out,
        src_transform=src.transform,
        src_crs=src.crs,
        dst_transform=dst.transform,
        dst_crs=dst.crs,
        src_nodata=nodata,
        dst_nodata=nodata,
        resampling=Resampling.average if coarser else Resampling.nearest,
    )
    return out

"""read_dn on any L1CProduct (GeoTIFF written here, Landsat-like) and resample_dn by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from gpumaja.errors import CorruptFileError, MissingFileError
from gpumaja.io.bands import file_grid, read_dn, resample_dn
from gpumaja.model.angles import AngleGrid
from gpumaja.model.grids import Grid
from gpumaja.model.product import BandRadiometry, L1CProduct

CRS = "EPSG:32631"


def write_tif(path: Path, data: np.ndarray, transform: Affine, crs: str = CRS) -> str:
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=transform,
    ) as ds:
        ds.write(data)
    return str(path)


def landsat_like(path: str, grid: Grid) -> L1CProduct:
    sun = AngleGrid.constant(40.0, 150.0, grid.coarsen(240.0 if grid.resolution <= 240 else grid.resolution))
    return L1CProduct(
        path=Path(path).parent,
        sensor="LANDSAT",
        platform="LANDSAT_8",
        tile="198030",
        acquired=datetime(2020, 1, 1, tzinfo=timezone.utc),
        orbit=198,
        processing_baseline="C2",
        product_id="test",
        band_files={"B4": path},
        radiometry={"B4": BandRadiometry(2e-5, -0.1)},
        grids={"R1": grid},
        sun=sun,
        view={"B4": sun},
        quantification=1.0,
    )


def test_plain_read(tmp_path):
    data = np.arange(12, dtype=np.uint16).reshape(3, 4) + 100
    t = Affine(30, 0, 500000, 0, -30, 4800000)
    path = write_tif(tmp_path / "b4.tif", data, t)
    grid = Grid(CRS, t, 4, 3)
    assert file_grid(path) == grid
    out = read_dn(landsat_like(path, grid), "B4")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, data)


def test_coarser_average_ignores_nodata(tmp_path):
    data = np.array([[10, 20, 0, 0], [30, 40, 0, 7], [1, 2, 5, 5], [4, 0, 6, 6]], np.uint16)
    t = Affine(10, 0, 500000, 0, -10, 4800000)
    path = write_tif(tmp_path / "b.tif", data, t)
    target = Grid.from_origin(CRS, 500000, 4800000, 20, 2, 2)
    out = read_dn(landsat_like(path, target), "B4")
    # (10+20+30+40)/4 = 25; only 7 valid -> 7; (1+2+4)/3 = 2.33 -> 2; (5+5+6+6)/4 = 5.5 -> 6 (half up)
    np.testing.assert_array_equal(out, [[25, 7], [2, 6]])


def test_all_nodata_block_stays_nodata():
    src = Grid.from_origin(CRS, 0, 100, 10, 4, 2)
    data = np.array([[0, 0, 9, 9], [0, 0, 9, 9]], np.uint16)
    out = resample_dn(data, src, src.rescaled(20))
    np.testing.assert_array_equal(out, [[0, 9]])


def test_coarser_sub_window_of_file():
    src = Grid.from_origin(CRS, 0, 60, 10, 6, 6)
    data = np.arange(1, 37, dtype=np.uint16).reshape(6, 6)
    dst = Grid.from_origin(CRS, 20, 40, 20, 2, 2)  # rows 2..5, cols 2..5 of the file
    # block rows 2-3 cols 2-3: 15 16 21 22 -> 18.5 -> 19; cols 4-5: 17 18 23 24 -> 20.5 -> 21
    np.testing.assert_array_equal(resample_dn(data, src, dst), [[19, 21], [31, 33]])


def test_coarser_unaligned_uses_gdal_average():
    src = Grid.from_origin(CRS, 0, 90, 10, 9, 9)
    data = np.full((9, 9), 500, np.uint16)
    dst = Grid.from_origin(CRS, 0, 90, 30, 3, 3).rescaled(30)
    shifted = Grid.from_origin(CRS, 5, 85, 25, 3, 3)  # non-integer factor, unaligned
    assert (resample_dn(data, src, dst) == 500).all()
    out = resample_dn(data, src, shifted)
    assert out.shape == (3, 3) and (out == 500).all()


def test_finer_uses_nearest(tmp_path):
    data = np.array([[1, 2], [3, 4]], np.uint16)
    t = Affine(20, 0, 500000, 0, -20, 4800000)
    path = write_tif(tmp_path / "b.tif", data, t)
    target = Grid.from_origin(CRS, 500000, 4800000, 10, 4, 4)
    out = read_dn(landsat_like(path, target), "B4")
    np.testing.assert_array_equal(out, [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])


def test_wrong_band_count(tmp_path):
    t = Affine(30, 0, 500000, 0, -30, 4800000)
    path = write_tif(tmp_path / "rgb.tif", np.ones((3, 2, 2), np.uint16), t)
    with pytest.raises(CorruptFileError, match="rgb.tif"):
        read_dn(landsat_like(path, Grid(CRS, t, 2, 2)), "B4")


def test_wrong_dtype(tmp_path):
    t = Affine(30, 0, 500000, 0, -30, 4800000)
    path = write_tif(tmp_path / "float.tif", np.ones((2, 2), np.float32), t)
    with pytest.raises(CorruptFileError, match=r"float.tif.*float32"):
        read_dn(landsat_like(path, Grid(CRS, t, 2, 2)), "B4")


def test_missing_file(tmp_path):
    grid = Grid.from_origin(CRS, 0, 60, 30, 2, 2)
    with pytest.raises(MissingFileError, match="gone.tif"):
        read_dn(landsat_like(str(tmp_path / "gone.tif"), grid), "B4")


def test_garbage_file(tmp_path):
    path = tmp_path / "junk.tif"
    path.write_bytes(b"II*\x00" + b"\x00" * 50)
    grid = Grid.from_origin(CRS, 0, 60, 30, 2, 2)
    with pytest.raises(CorruptFileError, match="junk.tif"):
        read_dn(landsat_like(str(path), grid), "B4")


def test_unknown_band(tmp_path):
    t = Affine(30, 0, 500000, 0, -30, 4800000)
    path = write_tif(tmp_path / "b.tif", np.ones((2, 2), np.uint16), t)
    with pytest.raises(KeyError, match="B7"):
        read_dn(landsat_like(path, Grid(CRS, t, 2, 2)), "B7")


def test_tci_has_three_bands(s2_safe_dir):
    from gpumaja.io.safe import read_safe

    safe = next(s2_safe_dir.glob("S2A_*.SAFE"))
    p = read_safe(safe)
    tci = next(safe.glob("GRANULE/*/IMG_DATA/*_TCI.jp2"))
    bad = replace(p, band_files={**p.band_files, "B02": str(tci)})
    with pytest.raises(CorruptFileError, match=r"_TCI.jp2.*3"):
        read_dn(bad, "B02")

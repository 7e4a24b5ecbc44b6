"""COG writer: layout (tiles, compression, overviews), values, nodata-aware average and nearest overviews."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from gpumaja.io.cog import _basic_cog_check, block_size, validate_cog, write_cog
from gpumaja.model.grids import Grid

pytest.importorskip("rio_cogeo")


def _grid(ny: int, nx: int, res: float = 10.0) -> Grid:
    return Grid.from_origin("EPSG:32631", 300000.0, 4900020.0, res, nx, ny)


def test_block_size_rule():
    assert block_size(30, 30) == 256
    assert block_size(2047, 100) == 256
    assert block_size(100, 2048) == 512
    assert block_size(10980, 10980) == 512


def test_int16_cog_with_average_overviews(tmp_path):
    ny, nx = 600, 700
    rng = np.random.default_rng(1)
    data = rng.integers(-500, 9000, (ny, nx)).astype(np.int16)
    data[:20, :30] = -10000
    path = write_cog(tmp_path / "a.tif", data, _grid(ny, nx), np.int16, -10000, "average", ["SRE B2"])
    ok, errors, warnings = validate_cog(path)
    assert ok, errors
    assert warnings == []
    with rasterio.open(path) as ds:
        assert ds.driver == "GTiff"
        assert ds.dtypes == ("int16",)
        assert ds.nodata == -10000
        assert ds.crs.to_epsg() == 32631
        assert tuple(ds.transform)[:6] == (10.0, 0.0, 300000.0, 0.0, -10.0, 4900020.0)
        assert ds.block_shapes[0] == (256, 256)
        assert ds.compression.name.upper() == "DEFLATE"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"
        assert ds.overviews(1) == [2, 4]  # until the smallest level fits in one 256 px block
        assert ds.descriptions == ("SRE B2",)
        np.testing.assert_array_equal(ds.read(1), data)


def test_average_overview_ignores_nodata(tmp_path):
    # 2x2 blocks [100, 200, 300, nodata] -> (100 + 200 + 300) / 3 = 200 at overview level 0 (factor 2)
    ny = nx = 520  # > 256 so that GDAL builds an overview
    block = np.array([[100, 200], [300, -10000]], np.int16)
    data = np.tile(block, (ny // 2, nx // 2))
    path = write_cog(tmp_path / "b.tif", data, _grid(ny, nx), np.int16, -10000, "average")
    with rasterio.open(path, overview_level=0) as ov:
        assert ov.shape == (ny // 2, nx // 2)
        np.testing.assert_array_equal(ov.read(1), 200)


def test_uint8_mask_nearest_overviews_keep_bit_patterns(tmp_path):
    ny, nx = 600, 530
    rng = np.random.default_rng(2)
    values = np.array([0, 1, 2, 4, 128], np.uint8)
    data = values[rng.integers(0, len(values), (ny, nx))]
    path = write_cog(tmp_path / "m.tif", data, _grid(ny, nx), np.uint8, None, "nearest")
    ok, errors, _ = validate_cog(path)
    assert ok, errors
    with rasterio.open(path) as ds:
        assert ds.nodata is None
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") in (None, "1")
        np.testing.assert_array_equal(ds.read(1), data)
    with rasterio.open(path, overview_level=0) as ov:
        # nearest never invents a value (an average of 1 and 2 would give 2 or 1.5 -> 2, of 4 and 128 -> 66)
        assert set(np.unique(ov.read(1))) <= set(values.tolist())


def test_small_multiband_raster(tmp_path):
    data = np.arange(2 * 30 * 30, dtype=np.uint8).reshape(2, 30, 30)
    path = write_cog(tmp_path / "s.tif", data, _grid(30, 30), "uint8", 0, band_descriptions=["wv", "aot"])
    ok, errors, warnings = validate_cog(path)
    assert ok and not errors and not warnings
    with rasterio.open(path) as ds:
        assert ds.count == 2 and ds.overviews(1) == []
        assert ds.descriptions == ("wv", "aot")
        np.testing.assert_array_equal(ds.read(), data)
    assert _basic_cog_check(path)[0]


def test_plain_striped_geotiff_is_not_a_cog(tmp_path):
    path = tmp_path / "plain.tif"
    data = np.zeros((600, 600), np.int16)
    g = _grid(600, 600)
    with rasterio.open(path, "w", driver="GTiff", width=600, height=600, count=1, dtype="int16",
                       crs=g.crs, transform=g.transform) as ds:
        ds.write(data, 1)
    ok, errors, _ = validate_cog(path)
    assert not ok and errors
    ok, errors, _ = _basic_cog_check(path)
    assert not ok and any("tiled" in e for e in errors)


def test_bad_arguments(tmp_path):
    g = _grid(10, 10)
    with pytest.raises(ValueError, match="does not match"):
        write_cog(tmp_path / "x.tif", np.zeros((10, 11)), g, np.int16, None)
    with pytest.raises(ValueError, match="resampling"):
        write_cog(tmp_path / "x.tif", np.zeros((10, 10)), g, np.int16, None, resampling="bilinear")
    with pytest.raises(ValueError, match="descriptions"):
        write_cog(tmp_path / "x.tif", np.zeros((2, 10, 10)), g, np.int16, None, band_descriptions=["a"])

"""The tile series as xarray, built from the two real T31TCJ SAFEs."""

import numpy as np
import pytest
import rasterio

from gpumaja.backend import CPU, select_backend
from gpumaja.io.series import assemble_series, open_products
from gpumaja.model.series import TileSeries
from gpumaja.pipeline.toa import load_group


@pytest.fixture(scope="module")
def series(s2_safe_dir):
    return TileSeries(tuple(assemble_series(open_products([s2_safe_dir]))))


def test_series_grids_and_coarse_grid(series):
    assert series.tile == "T31TCJ" and len(series) == 2
    assert series.groups == ("R1", "R2", "R3")
    assert [b.name for b in series.bands("R2")] == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    assert series.grids["R1"].shape == (30, 30)
    # a 300 m window: three 120 m coarse cells per side (the default), anchored on the window's
    # upper-left corner; two 240 m cells
    assert series.coarse_grid.shape == (3, 3) and series.coarse_grid.bounds[3] == 4850020
    coarse240 = TileSeries(series.products, coarse_resolution=240).coarse_grid
    assert coarse240.shape == (2, 2) and coarse240.bounds[3] == 4850020
    with pytest.raises(ValueError):
        TileSeries(series.products, coarse_resolution=200)


def test_group_dataset_r1(series, s2_safe_dir):
    ds = load_group(series, "R1", CPU)
    assert ds.toa.dims == ("time", "band", "y", "x") and ds.toa.shape == (2, 4, 30, 30)
    assert ds.toa.dtype == np.float32
    assert list(ds.platform.values) == ["SENTINEL-2A", "SENTINEL-2B"]
    assert ds.attrs["tile"] == "T31TCJ" and ds.attrs["crs"] == "EPSG:32631"
    assert float(ds.x[0]) == 350005.0 and float(ds.y[0]) == 4850015.0
    # TOA from the file's own DN: baseline 05.10, (DN - 1000) / 10000
    b04 = next(s2_safe_dir.glob("S2A*.SAFE/GRANULE/*/IMG_DATA/*_B04.jp2"))
    with rasterio.open(b04) as src:
        dn = src.read(1).astype(np.float64)
    np.testing.assert_allclose(ds.toa.sel(band="B04").isel(time=0).values, (dn - 1000) / 10000, atol=1e-6)
    assert ds.sun_zenith.shape[0] == 2 and ds.view_zenith.dims == ("time", "band", "vy", "vx")
    assert np.isfinite(ds.view_zenith.values).all()
    assert abs(float(ds.offset.sel(band="B04").isel(time=1)) - (-0.1)) < 1e-9


@pytest.mark.gpu
def test_group_dataset_gpu_equals_cpu(series):
    gpu = select_backend("gpu")
    for group in series.groups:
        a = load_group(series, group, CPU)
        b = load_group(series, group, gpu)
        assert type(b.toa.data).__module__.startswith("cupy")
        np.testing.assert_allclose(gpu.to_numpy(b.toa.data), a.toa.values, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(gpu.to_numpy(b.flags.data), a.flags.values)

"""MUSCATE L2A product writer and reader: names, folder content, COGs, quantification round trip,
masks, quicklook, STAC item, metadata-only products, atomic writing (maja-l2a.md §5, §1.11, §1.12)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

import gpumaja
from gpumaja.errors import InputError, MissingFileError
from gpumaja.io import muscate
from gpumaja.io.cog import validate_cog
from gpumaja.io.muscate import product_name, quantize_atb, quantize_reflectance, write_l2a
from gpumaja.io.muscate_mtd import read_mtd
from gpumaja.io.quicklook import stretch_to_byte, write_quicklook
from tests.l2a_factory import make_product, make_result

S2_NAME = "SENTINEL2A_20240120-105850-500_L2A_T31TCJ_C_V1-0"
L8_NAME = "LANDSAT8-OLITIRS-XS_20150804-155911-123_L2A_020-039_C_V1-0"
S2_IDS = {"R1": ("B2", "B3", "B4", "B8"), "R2": ("B5", "B6", "B7", "B8A", "B11", "B12")}
THEIA = "real/theia_l2a_metadata/SENTINEL2A_20170203-071245-541_L2A_T38KPD_C_V1-0"
REFL_TOL = 0.5 / 10000 + 1e-6  # half a count, plus float32 rounding of the division


def _expected_files(name: str, groups: dict[str, tuple[str, ...]]) -> set[str]:
    files = {f"{name}_MTD_ALL.xml", f"{name}_STAC.json", f"{name}_QKL_ALL.jpg"}
    for gid, bands in groups.items():
        files |= {f"{name}_{code}_{b}.tif" for code in ("SRE", "FRE") for b in bands}
        files.add(f"{name}_ATB_{gid}.tif")
        files |= {f"MASKS/{name}_{code}_{gid}.tif" for code in ("CLM", "MG2", "SAT", "EDG", "IAB")}
    return files


def _listing(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def s2_written(tmp_path_factory):
    result = make_result()
    out = tmp_path_factory.mktemp("l2a")
    return result, write_l2a(result, out)


# ----------------------------------------------------------------------------------------- names
def test_product_names():
    assert product_name(make_result()) == S2_NAME
    assert product_name(make_result(make_product("LANDSAT"))) == L8_NAME


# -------------------------------------------------------------------------------------- encoding
def test_quantize_reflectance_by_hand():
    rho = np.array([0.12344, 0.12346, -0.05, -1.0, -1.5, 5.0, np.nan, np.inf, 0.3], np.float32)
    edge = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1], bool)
    # round(0.12344e4) = 1234, round(0.12346e4) = 1235; -1.0 and -1.5 clip to -9999 (never the nodata),
    # 5.0 clips to 32767; NaN, inf and EDG -> -10000
    assert quantize_reflectance(rho, edge).tolist() == \
        [1234, 1235, -500, -9999, -9999, 32767, -10000, -10000, -10000]


def test_quantize_atb_by_hand():
    wv = np.array([0.0, 0.01, 0.026, 1.0, 12.75, 100.0, np.nan, 2.0])
    edge = np.array([0, 0, 0, 0, 0, 0, 0, 1], bool)
    # W / 0.05, clipped to 1..255 for valid pixels, 0 for nodata
    assert quantize_atb(wv, edge, 0.05).tolist() == [1, 1, 1, 20, 255, 255, 0, 0]
    aot = np.array([0.001, 0.1, 0.2525, 1.275, 3.0])
    assert quantize_atb(aot, np.zeros(5, bool), 0.005).tolist() == [1, 20, 50, 255, 255]


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-0.9999, max_value=3.2767, allow_nan=False))
def test_quantize_reflectance_round_trip_property(x):
    x32 = np.float32(x)
    q = quantize_reflectance(np.array([x32]), np.zeros(1, bool))[0]
    assert q != -10000
    assert abs(q / 10000.0 - float(x32)) <= 0.5 / 10000 + 1e-9


# ------------------------------------------------------------------------------------- the folder
def test_folder_content_and_cogs(s2_written):
    _, path = s2_written
    assert path.name == S2_NAME
    assert _listing(path) == _expected_files(S2_NAME, S2_IDS)
    assert [p.name for p in path.parent.iterdir()] == [S2_NAME]  # no temporary folder left
    for tif in sorted(path.rglob("*.tif")):
        ok, errors, _ = validate_cog(tif)
        assert ok, (tif.name, errors)
    with rasterio.open(path / f"{S2_NAME}_SRE_B8A.tif") as ds:
        assert (ds.dtypes, ds.nodata, ds.crs.to_epsg()) == (("int16",), -10000.0, 32631)
        assert ds.res == (20.0, 20.0) and ds.shape == (20, 25)
    with rasterio.open(path / f"{S2_NAME}_ATB_R1.tif") as ds:
        assert (ds.count, ds.dtypes, ds.nodata) == (2, ("uint8", "uint8"), 0.0)
    with rasterio.open(path / "MASKS" / f"{S2_NAME}_MG2_R2.tif") as ds:
        assert (ds.dtypes, ds.nodata) == (("uint8",), None)


@pytest.mark.parametrize("group", ["R1", "R2"])
def test_reflectance_round_trip(s2_written, group):
    result, path = s2_written
    g = result.groups[group]
    ds = gpumaja.open_l2a(path, group)
    assert list(ds.band.values) == list(g.bands)
    assert tuple(ds.band_id.values) == S2_IDS[group]
    for var, cube in (("sre", g.sre), ("fre", g.fre)):
        got = ds[var].values
        assert got.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(got), np.isnan(cube))
        ok = ~np.isnan(cube)
        assert np.abs(got[ok] - cube[ok]).max() <= REFL_TOL


def test_atb_and_masks_round_trip(s2_written):
    result, path = s2_written
    g = result.groups["R1"]
    ds = gpumaja.open_l2a(path)
    for var, values, step in (("water_vapour", g.water_vapour, 0.05), ("aot", g.aot, 0.005)):
        got = ds[var].values
        np.testing.assert_array_equal(np.isnan(got), np.isnan(values))
        ok = ~np.isnan(values)
        # valid values of the factory are inside 1..255 counts: error <= half a step
        assert np.abs(got[ok] - values[ok]).max() <= step / 2 + 1e-6
    for var in ("clm", "mg2", "sat", "edg", "iab"):
        assert ds[var].dtype == np.uint8
        np.testing.assert_array_equal(ds[var].values, getattr(g, var))


def test_reader_coordinates_and_attrs(s2_written):
    _result, path = s2_written
    ds = gpumaja.open_l2a(path, "R2")
    assert ds.attrs["crs"] == "EPSG:32631"
    assert ds.attrs["transform"] == (20.0, 0.0, 300000.0, 0.0, -20.0, 4900020.0)
    assert ds.attrs["product_id"] == S2_NAME and ds.attrs["platform"] == "SENTINEL2A"
    assert ds.attrs["acquired"] == "2024-01-20T10:58:50.500000Z"
    assert ds.attrs["cloud_percent"] == 12.0 and ds.attrs["snow_percent"] == 3.0  # int() as MAJA writes
    assert ds.x.values[0] == 300010.0 and ds.y.values[0] == 4900010.0  # pixel centres
    assert ds.x.size == 25 and ds.y.size == 20
    assert list(ds.wavelength_nm.values) == [705, 740, 783, 865, 1610, 2190]


def test_quicklook_file(s2_written):
    _, path = s2_written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path / f"{S2_NAME}_QKL_ALL.jpg") as ds:
            assert ds.driver == "JPEG" and ds.count == 3 and ds.dtypes[0] == "uint8"
            assert ds.shape == (40, 50)


def test_quicklook_stretch_and_subsampling(tmp_path):
    ramp = np.linspace(0.0, 1.0, 101)
    ramp[0] = np.nan
    out = stretch_to_byte(ramp)
    # valid values 0.01..1.0: 2nd percentile 0.0298, 98th 0.9802 -> 0.5 maps to 1 + 0.4702 * 254 / 0.9504
    lo, hi = 0.01 + 0.02 * 0.99, 0.01 + 0.98 * 0.99
    assert out[0] == 0
    assert out[50] == round(1 + (0.5 - lo) * 254 / (hi - lo))
    assert out[1] == 1 and out[100] == 255
    rgb = np.random.default_rng(3).uniform(0, 0.4, (3, 2100, 1500)).astype(np.float32)
    path = write_quicklook(tmp_path / "q.jpg", rgb)
    assert not list(tmp_path.glob("*.aux.xml"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as ds:
            assert ds.shape == (700, 500)  # step ceil(2100 / 1000) = 3


# ------------------------------------------------------------------------------------------ STAC
def test_stac_item(s2_written):
    _result, path = s2_written
    item = json.loads((path / f"{S2_NAME}_STAC.json").read_text())
    assert item["type"] == "Feature" and item["id"] == S2_NAME
    assert item["properties"]["datetime"] == "2024-01-20T10:58:50.500329Z"
    assert item["properties"]["eo:cloud_cover"] == pytest.approx(12.7)
    assert item["properties"]["platform"] == "sentinel-2a"
    assert any("/eo/" in e for e in item["stac_extensions"])
    assert any("/projection/" in e for e in item["stac_extensions"])
    files = _expected_files(S2_NAME, S2_IDS) - {f"{S2_NAME}_STAC.json"}
    assert {a["href"] for a in item["assets"].values()} == {f"./{f}" for f in files}
    for a in item["assets"].values():
        assert (path / a["href"]).is_file()
    b4 = item["assets"]["SRE_B4"]
    assert b4["roles"] == ["data", "reflectance"]
    assert b4["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert b4["eo:bands"] == [{"name": "B4", "common_name": "red", "center_wavelength": 0.665}]
    assert b4["proj:code"] == "EPSG:32631" and b4["proj:shape"] == [40, 50]
    assert b4["proj:transform"] == [10.0, 0.0, 300000.0, 0.0, -10.0, 4900020.0]
    assert b4["raster:bands"][0]["nodata"] == -10000 and b4["raster:bands"][0]["scale"] == 1e-4
    assert item["assets"]["FRE_B12"]["eo:bands"][0]["common_name"] == "swir22"
    assert item["assets"]["SRE_B8A"]["proj:shape"] == [20, 25]
    assert item["assets"]["MTD_ALL"]["roles"] == ["metadata"]
    assert "thumbnail" in item["assets"]["QKL_ALL"]["roles"]
    assert "cloud" in item["assets"]["CLM_R1"]["roles"]
    # footprint: a closed ring of 5 lon/lat points around 0.50 E, 44.22 N
    ring = item["geometry"]["coordinates"][0]
    assert len(ring) == 5 and ring[0] == ring[-1]
    assert item["bbox"][0] == pytest.approx(0.496, abs=0.01)
    assert item["bbox"][3] == pytest.approx(44.226, abs=0.01)


def test_stac_item_core_schema_offline(s2_written):
    """pystac's full validate() needs the extension schemas from the network (closed here); the core
    Item schema is bundled with pystac and checks offline with jsonschema."""
    pytest.importorskip("jsonschema")
    from pystac import STACObjectType
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    _, path = s2_written
    item = json.loads((path / f"{S2_NAME}_STAC.json").read_text())
    uri = JsonSchemaSTACValidator().validate_core(item, STACObjectType.ITEM, item["stac_version"])
    assert uri is not None and uri.endswith("item.json")


# ------------------------------------------------------------------------- not valid, atomicity
def test_cloudy_product_writes_metadata_only(tmp_path):
    result = make_result(cloud_percent=93.0)
    path = write_l2a(result, tmp_path)
    assert _listing(path) == {f"{S2_NAME}_MTD_ALL.xml", f"{S2_NAME}_STAC.json"}
    meta = read_mtd(path)
    assert meta["valid"] is False and meta["cloud_percent"] == 93.0
    assert meta["images"] == {"SRE": {}, "FRE": {}, "ATB": {}} and meta["masks"] == []
    item = json.loads((path / f"{S2_NAME}_STAC.json").read_text())
    assert list(item["assets"]) == ["MTD_ALL"]
    assert item["properties"]["gpumaja:valid"] is False
    with pytest.raises(InputError, match="metadata only"):
        gpumaja.open_l2a(path)


def test_empty_product_writes_metadata_only(tmp_path):
    # no group kept at all (e.g. no valid pixel): the footprint comes from the input product's grids
    result = dataclasses.replace(make_result(), groups={}, nodata_percent=100.0)
    assert not result.valid
    path = write_l2a(result, tmp_path)
    assert _listing(path) == {f"{S2_NAME}_MTD_ALL.xml", f"{S2_NAME}_STAC.json"}
    meta = read_mtd(path)
    assert meta["valid"] is False and meta["groups"] == {}
    item = json.loads((path / f"{S2_NAME}_STAC.json").read_text())
    assert item["bbox"][0] == pytest.approx(0.496, abs=0.01)


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = muscate.write_cog

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(muscate, "write_cog", failing)
    with pytest.raises(OSError, match="simulated"):
        write_l2a(make_result(), tmp_path)
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []


def test_existing_product_is_not_overwritten(tmp_path):
    result = make_result(groups=("R2",))
    path = write_l2a(result, tmp_path)
    marker = path / "user_note.txt"
    marker.write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        write_l2a(result, tmp_path)
    assert marker.read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == [S2_NAME]
    again = write_l2a(result, tmp_path, overwrite=True)
    assert again == path and not marker.exists()
    assert _listing(path) == _expected_files(S2_NAME, {"R2": S2_IDS["R2"]}) - {f"{S2_NAME}_QKL_ALL.jpg"}
    assert [p.name for p in tmp_path.iterdir()] == [S2_NAME]


def test_missing_file_is_named(tmp_path):
    path = write_l2a(make_result(groups=("R2",)), tmp_path)
    (path / f"{S2_NAME}_FRE_B11.tif").unlink()
    with pytest.raises(MissingFileError, match=f"{S2_NAME}_FRE_B11.tif"):
        gpumaja.open_l2a(path, "R2")
    with pytest.raises(InputError, match="no group 'R3'"):
        gpumaja.open_l2a(path, "R3")


def test_landsat_product(tmp_path):
    result = make_result(make_product("LANDSAT", (30, 35)))
    path = write_l2a(result, tmp_path)
    assert path.name == L8_NAME
    assert _listing(path) == _expected_files(L8_NAME, {"XS": ("B1", "B2", "B3", "B4", "B5", "B6", "B7")})
    ds = gpumaja.open_l2a(path)  # "R1" selects the only group, XS
    assert ds.attrs["group"] == "XS" and list(ds.band.values) == ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]
    g = result.groups["R1"]
    np.testing.assert_array_equal(ds.mg2.values, g.mg2)
    ok = ~np.isnan(g.sre)
    assert np.abs(ds.sre.values[ok] - g.sre[ok]).max() <= REFL_TOL


# ------------------------------------------------------------------------------------ real data
def test_real_theia_folder_names_the_missing_file(shared_data):
    # the shared Theia product holds the MTD and a FRE stack only: the listed SRE files are absent
    with pytest.raises(MissingFileError, match="SENTINEL2A_20170203-071245-541_L2A_T38KPD_D_V1-4_SRE_B2.tif"):
        gpumaja.open_l2a(shared_data / THEIA)


def test_real_safe_product(tmp_path, s2_safe_dir):
    from gpumaja.io.safe import read_safe

    product = read_safe(s2_safe_dir / "S2A_MSIL1C_20240120T105341_N0510_R051_T31TCJ_20240120T125244.SAFE")
    result = make_result(product, seed=5)
    path = write_l2a(result, tmp_path)
    # tile sensing time of MTD_TL.xml: 2024-01-20T10:58:50.500329Z
    assert path.name == S2_NAME
    meta = read_mtd(path)
    assert meta["sun_angles"]["zenith"] == pytest.approx(product.sun.mean_zenith)
    assert meta["group_geopositioning"]["R1"] == {"ulx": 350000.0, "uly": 4850020.0, "xdim": 10.0,
                                                 "ydim": -10.0, "nrows": 30, "ncols": 30}
    ds = gpumaja.open_l2a(path, "R2")
    assert ds.attrs["transform"] == (20.0, 0.0, 350000.0, 0.0, -20.0, 4850020.0)
    g = result.groups["R2"]
    ok = ~np.isnan(g.fre)
    assert np.abs(ds.fre.values[ok] - g.fre[ok]).max() <= REFL_TOL
    np.testing.assert_array_equal(ds.sat.values, g.sat)


# ------------------------------------------------------------------------------------ public API
def test_open_l2a_export_is_lazy():
    code = "import sys, gpumaja; print(callable(gpumaja.open_l2a), 'rasterio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]

"""L2B-SNOW product writer and reader (wasp-l3a-and-lis-snow.md §2.3 "Other outputs", §2.4): names,
folder content, COGs, round trip, MTD, quicklook colours, STAC item, atomic writing, and plain
Theia/LIS folders (no MTD, name from the folder, old nodata 254)."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io import snow_product
from gpumaja.io.cog import validate_cog
from gpumaja.io.muscate_mtd import read_mtd
from gpumaja.io.snow_product import read_snow, snow_group_id, snow_product_name, snow_quicklook, write_snow
from gpumaja.model.grids import Grid
from gpumaja.model.snow import SnowMap

CRS = "EPSG:32631"
X0, Y0 = 300000.0, 4900020.0
ACQUIRED = datetime(2018, 1, 1, 10, 54, 35, 457891, tzinfo=timezone.utc)
S2_NAME = "SENTINEL2A_20180101-105435-457_L2B-SNOW_T31TCH_C_V1-0"
L8_NAME = "LANDSAT8-OLITIRS-XS_20180115-103629-617_L2B-SNOW_T31TCH_C_V1-0"


def make_snow(platform: str = "SENTINEL2A", res: float = 20.0, shape=(20, 25), fsc=True, expert=True,
              acquired: datetime = ACQUIRED) -> SnowMap:
    rng = np.random.default_rng(3)
    grid = Grid.from_origin(CRS, X0, Y0, res, shape[1], shape[0])
    snw = rng.choice(np.array([0, 100, 205, 255], np.uint8), shape)
    fsc_a = np.where(snw == 100, rng.integers(1, 101, shape), snw).astype(np.uint8) if fsc else None
    expert_a = rng.integers(0, 64, shape).astype(np.uint8) if expert else None
    return SnowMap(tile="T31TCH", platform=platform, acquired=acquired, grid=grid, snw=snw, fsc=fsc_a,
                   expert=expert_a, snowline_m=1350.0, snow_percent=24.8, cloud_percent=25.2,
                   source_product="SENTINEL2A_20180101-105435-457_L2A_T31TCH_C_V1-0",
                   params={"ndsi_pass1": 0.4, "dz_m": 100.0, "strict_cloud_mask": False})


def _listing(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    m = make_snow()
    return m, write_snow(m, tmp_path_factory.mktemp("snow"))


def _write_tif(path, data, res=20.0, nodata=None, driver="GTiff"):
    grid = Grid.from_origin(CRS, X0, Y0, res, data.shape[1], data.shape[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver=driver, width=grid.width, height=grid.height, count=1,
                       dtype=data.dtype.name, crs=CRS, transform=grid.transform, nodata=nodata) as ds:
        ds.write(data, 1)
    return grid


# ----------------------------------------------------------------------------------------- names
def test_names_and_groups():
    assert snow_product_name(make_snow()) == S2_NAME  # milliseconds truncated
    l8 = make_snow("LANDSAT8", 30.0, acquired=datetime(2018, 1, 15, 10, 36, 29, 617000, tzinfo=timezone.utc))
    assert snow_product_name(l8) == L8_NAME
    assert snow_group_id(make_snow()) == "R2" and snow_group_id(l8) == "XS"


# ------------------------------------------------------------------------------------- the folder
def test_folder_content_and_cogs(written):
    _, path = written
    assert path.name == S2_NAME
    assert _listing(path) == {f"{S2_NAME}_{s}" for s in ("SNW_R2.tif", "FSC_R2.tif", "SNOW_ALL_R2.tif",
                                                           "QKL_ALL.jpg", "MTD_ALL.xml")} | {f"{S2_NAME}.json"}
    assert [p.name for p in path.parent.iterdir()] == [S2_NAME]
    for tif in sorted(path.glob("*.tif")):
        ok, errors, _ = validate_cog(tif)
        assert ok, (tif.name, errors)
        with rasterio.open(tif) as ds:
            assert ds.dtypes[0] == "uint8" and ds.res == (20.0, 20.0) and ds.shape == (20, 25)
            assert ds.nodata == (None if "SNOW_ALL" in tif.name else 255.0)


def test_landsat_without_optional_layers(tmp_path):
    m = make_snow("LANDSAT8", 30.0, fsc=False, expert=False,
                  acquired=datetime(2018, 1, 15, 10, 36, 29, 617000, tzinfo=timezone.utc))
    path = write_snow(m, tmp_path)
    assert path.name == L8_NAME
    assert _listing(path) == {f"{L8_NAME}_SNW_XS.tif", f"{L8_NAME}_QKL_ALL.jpg", f"{L8_NAME}_MTD_ALL.xml",
                              f"{L8_NAME}.json"}
    back = read_snow(path)
    assert back.platform == "LANDSAT8" and back.fsc is None and back.expert is None
    assert back.grid.resolution == 30.0
    item = json.loads((path / f"{L8_NAME}.json").read_text())
    assert item["properties"]["platform"] == "landsat-8" and item["properties"]["constellation"] == "landsat"


def test_round_trip(written):
    m, path = written
    back = read_snow(path)
    assert (back.tile, back.platform, back.grid) == ("T31TCH", "SENTINEL2A", m.grid)
    assert back.acquired == datetime(2018, 1, 1, 10, 54, 35, 457000, tzinfo=timezone.utc)
    assert back.snw.dtype == np.uint8
    np.testing.assert_array_equal(back.snw, m.snw)
    np.testing.assert_array_equal(back.fsc, m.fsc)
    np.testing.assert_array_equal(back.expert, m.expert)
    assert (back.snowline_m, back.snow_percent, back.cloud_percent) == (1350.0, 24.8, 25.2)
    assert back.source_product == m.source_product and back.params == m.params
    # the SNW file itself may be given too
    assert read_snow(path / f"{S2_NAME}_SNW_R2.tif").snowline_m == 1350.0


def test_mtd(written):
    _, path = written
    meta = read_mtd(path)
    assert meta["product_id"] == S2_NAME and meta["level"] == "L2B-SNOW"
    assert meta["platform"] == "SENTINEL2A" and meta["tile"] == "T31TCH"
    assert meta["acquired"] == datetime(2018, 1, 1, 10, 54, 35, 457000, tzinfo=timezone.utc)
    assert meta["crs"] == CRS and meta["group_geopositioning"]["R2"]["xdim"] == 20.0
    assert meta["quality"] == {"ZS": 1350.0, "SnowPercent": 24.8, "CloudPercent": 25.2}
    text = (path / f"{S2_NAME}_MTD_ALL.xml").read_text()
    assert "<PRODUCT_ID>SENTINEL2A_20180101-105435-457_L2A_T31TCH_C_V1-0</PRODUCT_ID>" in text
    assert '<PARAMETER name="ndsi_pass1">0.4</PARAMETER>' in text


# ------------------------------------------------------------------------------------- quicklook
def test_quicklook_colours_by_hand(written):
    snw = np.array([[0, 100, 205, 255, 254, 50]], np.uint8)
    img = snow_quicklook(snw)
    assert img.shape == (3, 1, 6) and img.dtype == np.uint8
    colours = [tuple(int(v) for v in img[:, 0, i]) for i in range(6)]
    assert colours[0] == (80, 90, 40)  # no snow: dark olive
    assert colours[1] == (225, 250, 255)  # snow: white-cyan
    assert colours[2] == (150, 150, 150)  # cloud: grey
    assert colours[3] == colours[4] == colours[5] == (0, 0, 0)  # nodata, old nodata, unknown: black
    _, path = written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path / f"{S2_NAME}_QKL_ALL.jpg") as ds:
            assert ds.count == 3 and ds.shape == (20, 25)


# ------------------------------------------------------------------------------------------ STAC
def test_stac_item(written):
    _, path = written
    item = json.loads((path / f"{S2_NAME}.json").read_text())
    assert item["id"] == S2_NAME and item["properties"]["datetime"] == "2018-01-01T10:54:35.457891Z"
    assert item["properties"]["platform"] == "sentinel-2a" and item["properties"]["instruments"] == ["msi"]
    assert item["properties"]["eo:snow_cover"] == 24.8 and item["properties"]["gpumaja:snowline_m"] == 1350.0
    assert set(item["assets"]) == {"SNW_R2", "FSC_R2", "SNOW_ALL_R2", "QKL_ALL", "MTD_ALL"}
    for a in item["assets"].values():
        assert (path / a["href"]).is_file()
    assert item["assets"]["SNW_R2"]["proj:shape"] == [20, 25]
    assert item["assets"]["SNW_R2"]["raster:bands"][0]["nodata"] == 255
    pytest.importorskip("jsonschema")
    from pystac import STACObjectType
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    assert JsonSchemaSTACValidator().validate_core(item, STACObjectType.ITEM, item["stac_version"])


# ------------------------------------------------------------------------------------- atomicity
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    real = snow_product.write_cog
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(snow_product, "write_cog", failing)
    with pytest.raises(OSError, match="simulated"):
        write_snow(make_snow(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_existing_product_is_not_overwritten(tmp_path):
    m = make_snow(fsc=False, expert=False)
    path = write_snow(m, tmp_path)
    with pytest.raises(InputError, match="already exists"):
        write_snow(m, tmp_path)
    assert write_snow(m, tmp_path, overwrite=True) == path
    assert [p.name for p in tmp_path.iterdir()] == [S2_NAME]


# ------------------------------------------------------------------------ plain Theia / LIS folders
def test_plain_theia_folder_without_mtd(tmp_path):
    folder = tmp_path / "SENTINEL2A_20180101-105435-457_L2B-SNOW_T31TCH_D_V1-4"
    snw = np.array([[0, 0, 100, 205],
                    [254, 254, 100, 0]], np.uint8)  # LIS < 1.6 nodata 254
    grid = _write_tif(folder / f"{folder.name}_SNW_R2.tif", snw, nodata=254)
    m = read_snow(folder)
    assert (m.tile, m.platform) == ("T31TCH", "SENTINEL2A")
    assert m.acquired == datetime(2018, 1, 1, 10, 54, 35, 457000, tzinfo=timezone.utc)
    assert m.grid == grid and m.snw.dtype == np.uint8
    np.testing.assert_array_equal(m.snw, [[0, 0, 100, 205], [255, 255, 100, 0]])
    # shares of all pixels, counted by hand: 2 snow and 1 cloud of 8
    assert m.snow_percent == 25.0 and m.cloud_percent == 12.5
    assert m.snowline_m == -1.0 and m.fsc is None


def test_plain_landsat_and_lis15_folders(tmp_path):
    folder = tmp_path / "LANDSAT8-OLITIRS-XS_20180115-103629-617_L2B-SNOW_T31TCH_D_V1-9"
    _write_tif(folder / f"{folder.name}_SNW_XS.tif", np.array([[100, 0]], np.uint8), res=30.0)
    m = read_snow(folder)
    assert (m.platform, m.tile, m.grid.resolution) == ("LANDSAT8", "T31TCH", 30.0)
    assert m.acquired == datetime(2018, 1, 15, 10, 36, 29, 617000, tzinfo=timezone.utc)
    # LIS 1.5 layout: LIS_PRODUCTS/LIS_SEB.TIF, with a vector file beside it
    folder = tmp_path / "SENTINEL2B_20180131-105416-437_L2B-SNOW_T31TCH_D_V1-4"
    _write_tif(folder / "LIS_PRODUCTS" / "LIS_SEB.TIF", np.array([[205, 254]], np.uint8))
    (folder / "LIS_PRODUCTS" / "LIS_SEB_VEC.shp").write_bytes(b"")
    m = read_snow(folder)
    assert m.platform == "SENTINEL2B" and m.snw.tolist() == [[205, 255]]


def test_plain_folder_errors(tmp_path):
    with pytest.raises(MissingFileError, match="no such file"):
        read_snow(tmp_path / "nope")
    empty = tmp_path / "SENTINEL2A_20180101-105435-457_L2B-SNOW_T31TCH_D_V1-4"
    empty.mkdir()
    with pytest.raises(MissingFileError, match="SNW_R2"):
        read_snow(empty)
    badname = tmp_path / "my_snow"
    _write_tif(badname / "x_SNW_R2.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match="Theia L2B-SNOW name"):
        read_snow(badname)
    badcodes = tmp_path / "SENTINEL2A_20180102-105435-457_L2B-SNOW_T31TCH_D_V1-4"
    tif = badcodes / f"{badcodes.name}_SNW_R2.tif"
    _write_tif(tif, np.array([[0, 7]], np.uint8))
    with pytest.raises(CorruptFileError, match=r"SNW_R2\.tif.*unexpected SNW codes \[7\]"):
        read_snow(badcodes)

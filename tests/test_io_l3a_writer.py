"""L3A product writer and reader (wasp-l3a-and-lis-snow.md §1.6): name, folder content, COGs,
quantification by hand, round trip, MTD (also through muscate_mtd.read_mtd), quicklook, STAC item,
atomic writing; and what the WASP inputs need from a real Theia L2A MTD (§1.1)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from datetime import date, datetime, timezone

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from gpumaja.errors import InputError, MissingFileError
from gpumaja.io import l3a_writer
from gpumaja.io.cog import validate_cog
from gpumaja.io.l3a_writer import l3a_product_name, quicklook_image, read_l3a, write_l3a
from gpumaja.io.muscate_mtd import read_mtd
from gpumaja.io.xml import parse_xml
from gpumaja.model.grids import Grid
from gpumaja.model.l3a import L3AGroup, L3AInput, L3AResult
from gpumaja.model.wasp_params import WASP_R1_BANDS, WASP_R2_BANDS, WaspParams

NAME = "SENTINEL2X_20180515-000000-000_L3A_T31TCJ_C_V1-1"
R1_IDS = ("B2", "B3", "B4", "B8")
R2_IDS = ("B5", "B6", "B7", "B8A", "B11", "B12")
CRS = "EPSG:32631"
X0, Y0 = 300000.0, 4900020.0
THEIA = "real/theia_l2a_metadata/SENTINEL2A_20170203-071245-541_L2A_T38KPD_C_V1-0"
THEIA_ID = "SENTINEL2A_20170203-071245-541_L2A_T38KPD_D_V1-4"
PRODUCED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _group(name: str, res: float, bands: tuple[str, ...], shape: tuple[int, int], seed: int) -> L3AGroup:
    rng = np.random.default_rng(seed)
    grid = Grid.from_origin(CRS, X0, Y0, res, shape[1], shape[0])
    refl = rng.uniform(-0.05, 0.6, (len(bands), *shape)).astype(np.float32)
    flag = rng.integers(0, 5, shape).astype(np.uint8)
    flag[:2, :3] = 0  # a nodata corner
    weight = rng.uniform(0.0, 4.0, shape).astype(np.float32)
    weight[flag == 1] = 0.0  # cloud: never seen clear
    day = rng.uniform(-10.0, 160.0, shape).astype(np.float32)
    refl[:, flag == 0] = np.nan
    weight[flag == 0] = np.nan
    day[flag == 0] = np.nan
    return L3AGroup(name, grid, bands, refl, weight, day, flag)


def make_l3a(platform: str = "SENTINEL2X") -> L3AResult:
    return L3AResult(
        tile="T31TCJ", platform=platform, synthesis_date=date(2018, 5, 15), half_window_days=23, crs=CRS,
        groups={"R1": _group("R1", 10.0, WASP_R1_BANDS, (40, 50), 1),
                "R2": _group("R2", 20.0, WASP_R2_BANDS, (20, 25), 2)},
        inputs=[L3AInput("SENTINEL2A_20180420-105032-461_L2A_T31TCJ_C_V1-0", "SENTINEL2A",
                         datetime(2018, 4, 20, 10, 50, 32, 461000, tzinfo=timezone.utc), "/data/a"),
                L3AInput("SENTINEL2B_20180505-105301-123_L2A_T31TCJ_C_V1-0", "SENTINEL2B",
                         datetime(2018, 5, 5, 10, 53, 1, 123000, tzinfo=timezone.utc), "/data/b")],
        params=dataclasses.asdict(WaspParams()), cloud_percent=12.5, snow_percent=3.49,
        production_date=PRODUCED)


def _listing(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _expected_files() -> set[str]:
    files = {f"{NAME}_FRC_{b}.tif" for b in R1_IDS + R2_IDS}
    files |= {f"MASKS/{NAME}_{c}_{g}.tif" for c in ("WGT", "DTS", "FLG") for g in ("R1", "R2")}
    return files | {f"{NAME}_QKL_ALL.jpg", f"{NAME}_MTD_ALL.xml", f"{NAME}.json"}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result = make_l3a()
    return result, write_l3a(result, tmp_path_factory.mktemp("l3a"))


# ----------------------------------------------------------------------------------------- names
def test_product_names():
    assert l3a_product_name(make_l3a()) == NAME
    assert l3a_product_name(make_l3a("SENTINEL-2A")) == "SENTINEL2A_20180515-000000-000_L3A_T31TCJ_C_V1-1"
    assert l3a_product_name(make_l3a("SENTINEL2B")).startswith("SENTINEL2B_20180515-000000-000_L3A_")


# ------------------------------------------------------------------------------------- the folder
def test_folder_content_and_cogs(written):
    _, path = written
    assert path.name == NAME
    assert _listing(path) == _expected_files()
    assert [p.name for p in path.parent.iterdir()] == [NAME]  # no temporary folder left
    for tif in sorted(path.rglob("*.tif")):
        ok, errors, _ = validate_cog(tif)
        assert ok, (tif.name, errors)
    expected = {f"{NAME}_FRC_B4.tif": ("int16", -10000.0, 10.0, (40, 50)),
                f"{NAME}_FRC_B11.tif": ("int16", -10000.0, 20.0, (20, 25)),
                f"MASKS/{NAME}_WGT_R1.tif": ("int16", -10000.0, 10.0, (40, 50)),
                f"MASKS/{NAME}_DTS_R2.tif": ("int16", -10000.0, 20.0, (20, 25)),
                f"MASKS/{NAME}_FLG_R2.tif": ("uint8", 0.0, 20.0, (20, 25))}
    for rel, (dtype, nodata, res, shape) in expected.items():
        with rasterio.open(path / rel) as ds:
            assert (ds.dtypes[0], ds.nodata, ds.res[0], ds.shape, ds.crs.to_epsg()) == \
                (dtype, nodata, res, shape, 32631), rel
            assert ds.transform.c == X0 and ds.transform.f == Y0


def test_quantification_by_hand(tmp_path):
    result = make_l3a()
    g = result.groups["R2"]
    # pixel (5, 5): land with hand-picked values; pixel (5, 6): no data (FLG 0) with finite values
    g.flag[5, 5], g.flag[5, 6], g.flag[5, 7] = 4, 0, 1
    g.reflectance[:, 5, 5] = [0.12344, 0.12346, -0.05, 0.0, 1.0, np.nan]
    g.reflectance[:, 5, 6] = 0.2
    g.weight[5, 5], g.weight[5, 6], g.weight[5, 7] = 1.2346, 2.0, 0.0
    g.day[5, 5], g.day[5, 6], g.day[5, 7] = 134.6, 120.0, -3.2
    path = write_l3a(result, tmp_path)

    def px(rel, r, c):
        with rasterio.open(path / rel) as ds:
            return int(ds.read(1)[r, c])

    # FRC = round(R * 10000): 1234, 1235, -500, 0, 10000, NaN -> -10000 (B5, B6, B7, B8A, B11, B12)
    assert [px(f"{NAME}_FRC_{b}.tif", 5, 5) for b in R2_IDS] == [1234, 1235, -500, 0, 10000, -10000]
    assert [px(f"{NAME}_FRC_{b}.tif", 5, 6) for b in R2_IDS] == [-10000] * 6  # FLG 0 -> nodata
    # WGT = round(W * 1000); -10000 where FLG == 0; a cloud pixel keeps W = 0
    assert [px(f"MASKS/{NAME}_WGT_R2.tif", 5, c) for c in (5, 6, 7)] == [1235, -10000, 0]
    # DTS = round(day)
    assert [px(f"MASKS/{NAME}_DTS_R2.tif", 5, c) for c in (5, 6, 7)] == [135, -10000, -3]
    assert [px(f"MASKS/{NAME}_FLG_R2.tif", 5, c) for c in (5, 6, 7)] == [4, 0, 1]


def test_round_trip(written):
    result, path = written
    back = read_l3a(path)
    assert (back.tile, back.platform, back.synthesis_date, back.half_window_days, back.crs) == \
        ("T31TCJ", "SENTINEL2X", date(2018, 5, 15), 23, CRS)
    assert back.period == (date(2018, 4, 22), date(2018, 6, 7))
    assert back.cloud_percent == 12.5 and back.snow_percent == 3.49
    assert back.production_date == PRODUCED
    assert back.inputs == result.inputs
    assert back.params == json.loads(json.dumps(result.params))  # tuples come back as lists
    assert sorted(back.groups) == ["R1", "R2"]
    for gid, g in result.groups.items():
        b = back.groups[gid]
        assert b.grid == g.grid and b.bands == g.bands
        assert b.reflectance.dtype == np.float32 and b.flag.dtype == np.uint8
        np.testing.assert_array_equal(b.flag, g.flag)
        empty = g.flag == 0
        for got, want, tol in ((b.reflectance, g.reflectance, 0.5e-4 + 1e-7), (b.weight, g.weight, 0.5e-3 + 1e-6),
                               (b.day, g.day, 0.5 + 1e-4)):
            assert np.isnan(got[..., empty]).all()
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            ok = ~np.isnan(want)
            assert np.abs(got[ok] - want[ok]).max() <= tol


# ------------------------------------------------------------------------------------------- MTD
def test_read_mtd_parses_the_l3a_mtd(written):
    _, path = written
    meta = read_mtd(path)
    assert meta["product_id"] == NAME
    assert meta["identifier"] == "SENTINEL2X_20180515-000000-000_L3A_T31TCJ_C"
    assert meta["platform"] == "SENTINEL2X" and meta["level"] == "L3A" and meta["product_version"] == "1.1"
    assert meta["acquired"] == datetime(2018, 5, 15, tzinfo=timezone.utc)
    assert meta["production_date"] == PRODUCED
    assert meta["tile"] == "T31TCJ" and meta["zone_type"] == "Tile"
    assert meta["bands"] == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    assert meta["groups"] == {"R1": list(R1_IDS), "R2": list(R2_IDS)}
    assert meta["crs"] == CRS and meta["epsg"] == 32631
    assert meta["group_geopositioning"]["R1"] == {"ulx": X0, "uly": Y0, "xdim": 10.0, "ydim": -10.0,
                                                 "nrows": 40, "ncols": 50}
    assert meta["group_geopositioning"]["R2"]["xdim"] == 20.0
    assert meta["mask_files"]["FLG"]["R2"] == f"MASKS/{NAME}_FLG_R2.tif"
    assert set(meta["mask_files"]) == {"WGT", "DTS", "FLG"}
    assert meta["quicklook"] == f"{NAME}_QKL_ALL.jpg"
    # QUALITY_INDEX: rounded percentages of FLG_R2 == 1 / 2 (§1.6): 12.5 -> 13, 3.49 -> 3
    assert meta["cloud_percent"] == 13.0 and meta["snow_percent"] == 3.0
    assert meta["quantification"]["reflectance"] == 10000.0 and meta["nodata"]["reflectance"] == -10000.0
    assert meta["valid"] is True


def test_mtd_structure(written):
    _, path = written
    root = parse_xml(path / f"{NAME}_MTD_ALL.xml")
    assert root.tag == "Muscate_Metadata_Document"
    assert root.find("Product_Characteristics/PRODUCT_LEVEL").text == "L3A"
    period = root.find("Product_Characteristics/Synthesis_Period")
    assert period.find("BEGIN").text == "2018-04-22T00:00:00.000Z"
    assert period.find("END").text == "2018-06-07T00:00:00.000Z"
    assert period.find("HALF_WINDOW").text == "23"
    images = root.findall("Product_Organisation/Muscate_Product/Image_List/Image")
    assert [i.find("Image_Properties/NATURE").text for i in images] == ["Flat_Reflectance_Composite"]
    frc = {f.get("band_id"): f.text for f in images[0].iter("IMAGE_FILE")}
    assert frc == {b: f"{NAME}_FRC_{b}.tif" for b in R1_IDS + R2_IDS}
    masks = root.findall("Product_Organisation/Muscate_Product/Mask_List/Mask")
    assert [(m.find("Mask_Properties/NATURE").text, m.find("Mask_Properties/ENCODING").text) for m in masks] == \
        [("Weight", "int16"), ("Weighted_Average_Date", "int16"), ("Synthesis_Flag", "byte")]
    assert root.find("Radiometric_Informations/REFLECTANCE_QUANTIFICATION_VALUE").text == "10000"
    assert root.find("Radiometric_Informations/WEIGHT_QUANTIFICATION_VALUE").text == "1000"
    special = {e.get("name"): e.text for e in root.iter("SPECIAL_VALUE")}
    assert special["nodata"] == "-10000"
    inputs = root.findall(".//Inputs_List/PRODUCT")
    assert [p.find("PRODUCT_ID").text for p in inputs] == [
        "SENTINEL2A_20180420-105032-461_L2A_T31TCJ_C_V1-0", "SENTINEL2B_20180505-105301-123_L2A_T31TCJ_C_V1-0"]
    assert inputs[1].find("ACQUISITION_DATE").text == "2018-05-05T10:53:01.123Z"
    params = {p.get("name"): p.text for p in root.iter("PARAMETER")}
    assert params["half_window_days"] == "23" and params["aot_max"] == "0.8"


def test_read_l3a_errors(tmp_path, written):
    with pytest.raises(MissingFileError):
        read_l3a(tmp_path / "nope")
    _, path = written
    copy = tmp_path / NAME
    copy.mkdir()
    (copy / f"{NAME}_MTD_ALL.xml").write_bytes((path / f"{NAME}_MTD_ALL.xml").read_bytes())
    with pytest.raises(MissingFileError, match=f"{NAME}_FRC_B2.tif"):
        read_l3a(copy)


# ------------------------------------------------------------------------------------- quicklook
def test_quicklook_stretch_by_hand(written):
    rgb = np.array([[[0.0, 0.1, 0.3, 0.5, np.nan, -0.01]]] * 3, np.float32)
    # 0..0.3 -> 0..255 (WASP: gdal_translate -scale 0 3000 0 255), clipped; NaN -> 0
    assert quicklook_image(rgb)[0, 0].tolist() == [0, 85, 255, 255, 0, 0]
    assert quicklook_image(np.zeros((3, 2500, 10), np.float32)).shape == (3, 834, 4)  # step 3
    _, path = written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path / f"{NAME}_QKL_ALL.jpg") as ds:
            assert ds.driver == "JPEG" and ds.count == 3 and ds.shape == (40, 50)


# ------------------------------------------------------------------------------------------ STAC
def test_stac_item(written):
    _, path = written
    item = json.loads((path / f"{NAME}.json").read_text())
    assert item["type"] == "Feature" and item["id"] == NAME
    props = item["properties"]
    assert props["datetime"] == "2018-05-15T00:00:00Z"
    assert props["start_datetime"] == "2018-04-22T00:00:00Z" and props["end_datetime"] == "2018-06-07T23:59:59Z"
    assert props["eo:cloud_cover"] == 12.5 and "platform" not in props  # S2A + S2B: no single platform
    assert props["gpumaja:muscate_platform"] == "SENTINEL2X" and props["constellation"] == "sentinel-2"
    assert len(props["gpumaja:inputs"]) == 2
    assert any("/projection/" in e for e in item["stac_extensions"])
    files = _expected_files() - {f"{NAME}.json"}
    assert {a["href"] for a in item["assets"].values()} == {f"./{f}" for f in files}
    b8a = item["assets"]["FRC_B8A"]
    assert b8a["proj:shape"] == [20, 25] and b8a["proj:transform"] == [20.0, 0.0, X0, 0.0, -20.0, Y0]
    assert b8a["raster:bands"][0]["nodata"] == -10000 and b8a["raster:bands"][0]["scale"] == 1e-4
    assert b8a["eo:bands"][0]["name"] == "B8A"
    assert item["assets"]["WGT_R1"]["raster:bands"][0]["scale"] == 1e-3
    assert item["assets"]["MTD_ALL"]["roles"] == ["metadata"]


def test_stac_item_core_schema_offline(written):
    pytest.importorskip("jsonschema")
    from pystac import STACObjectType
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    _, path = written
    item = json.loads((path / f"{NAME}.json").read_text())
    uri = JsonSchemaSTACValidator().validate_core(item, STACObjectType.ITEM, item["stac_version"])
    assert uri is not None and uri.endswith("item.json")


# ------------------------------------------------------------------------------------- atomicity
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = l3a_writer.write_cog

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(l3a_writer, "write_cog", failing)
    with pytest.raises(OSError, match="simulated"):
        write_l3a(make_l3a(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_existing_product_is_not_overwritten(tmp_path):
    result = make_l3a()
    path = write_l3a(result, tmp_path)
    marker = path / "user_note.txt"
    marker.write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        write_l3a(result, tmp_path)
    assert marker.read_text() == "mine"
    again = write_l3a(result, tmp_path, overwrite=True)
    assert again == path and not marker.exists()
    assert [p.name for p in tmp_path.iterdir()] == [NAME]


# --------------------------------------------------------------------- a real Theia L2A MTD (§1.1)
def test_real_theia_mtd_gives_what_wasp_reads(shared_data):
    """Expected values copied from the XML by eye (PRODUCT_ID, PLATFORM, ACQUISITION_DATE, the
    Flat_Reflectance IMAGE_FILE list, the CLM (nature "Cloud") and MG2 (nature "Cloud_Shadow") MASK_FILE
    entries, REFLECTANCE/WATER_VAPOR/AOT quantification values and SPECIAL_VALUEs)."""
    meta = read_mtd(shared_data / THEIA)
    assert meta["product_id"] == THEIA_ID
    assert meta["platform"] == "SENTINEL2A"
    assert meta["acquired"] == datetime(2017, 2, 3, 7, 12, 45, 541000, tzinfo=timezone.utc)
    assert meta["level"] == "L2A" and meta["tile"] == "T38KPD"
    assert meta["images"]["FRE"] == {b: f"{THEIA_ID}_FRE_{b}.tif" for b in R1_IDS + R2_IDS}
    assert meta["mask_files"]["CLM"] == {g: f"MASKS/{THEIA_ID}_CLM_{g}.tif" for g in ("R1", "R2")}
    assert meta["mask_files"]["MG2"] == {g: f"MASKS/{THEIA_ID}_MG2_{g}.tif" for g in ("R1", "R2")}
    natures = {(m["nature"], m["file"].rsplit("_", 2)[-2]) for m in meta["masks"]}
    assert ("Cloud", "CLM") in natures and ("Cloud_Shadow", "MG2") in natures  # the older MUSCATE natures
    clm_r1_bits = sorted(m["bit"] for m in meta["masks"] if m["file"].endswith("_CLM_R1.tif"))
    assert clm_r1_bits == [1, 2, 3, 4, 5, 6, 7, 8]
    assert meta["quantification"] == {"reflectance": 10000.0, "water_vapour": 20.0, "aot": 200.0}
    assert meta["nodata"] == {"reflectance": -10000.0, "water_vapour": 0.0, "aot": 0.0}
    assert meta["groups"] == {"R1": list(R1_IDS), "R2": list(R2_IDS)}
    assert meta["crs"] == "EPSG:32738"


def test_real_theia_folder_has_no_band_files_for_open_l2a(shared_data):
    """The shared folder holds the MTD and one crop FRE_STACK.tif only: none of the per-band files the
    MTD lists is there, so open_l2a stops at the first (SRE_B2) and names it."""
    from gpumaja import open_l2a

    folder = shared_data / THEIA
    assert not (folder / f"{THEIA_ID}_FRE_B2.tif").exists()
    with pytest.raises(MissingFileError, match=f"{THEIA_ID}_SRE_B2.tif"):
        open_l2a(folder)

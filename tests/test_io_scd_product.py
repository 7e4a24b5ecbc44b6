"""Snow cover duration product writer and reader (wasp-l3a-and-lis-snow.md §3 "Products", "tmp
outputs"): names, COGs, date files, metadata statistics by hand, SCD colour map, STAC, round trip,
atomic writing."""

from __future__ import annotations

import json
import warnings
from datetime import date

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from gpumaja.errors import InputError, MissingFileError
from gpumaja.io import scd_product
from gpumaja.io.cog import validate_cog
from gpumaja.io.scd_product import read_scd, scd_colour_map, scd_product_name, write_scd
from gpumaja.model.grids import Grid
from gpumaja.model.snow import SnowDuration

CRS = "EPSG:32631"
X0, Y0 = 300000.0, 4900020.0
NAME = "LIS_S2L8-SNOW-L3B_T31TCH_20170901_20180831_V1-0"
LAYER_FILES = {k: f"LIS_S2L8-SNOW-{k}_T31TCH_20170901_20180831_V1-0.tif" for k in ("SCD", "SOD", "SMOD", "NOBS")}


def make_scd(start=date(2017, 9, 1), stop=date(2018, 8, 31), shape=(20, 25), mission="S2L8") -> SnowDuration:
    rng = np.random.default_rng(5)
    grid = Grid.from_origin(CRS, X0, Y0, 20.0, shape[1], shape[0])
    scd = rng.integers(0, 366, shape).astype(np.uint16)
    sod = np.where(scd > 10, rng.integers(0, 100, shape), 0).astype(np.uint16)
    smod = np.where(scd > 10, sod + scd // 2, 0).astype(np.uint16)
    nobs = rng.integers(0, 60, shape).astype(np.uint16)
    return SnowDuration(tile="T31TCH", mission=mission, start=start, stop=stop, grid=grid, scd=scd, sod=sod,
                        smod=smod, nobs=nobs, inputs=["SENTINEL2A_20170903-...", "LANDSAT8-OLITIRS-XS_20170910-..."],
                        input_dates=[date(2017, 9, 3), date(2017, 9, 10)],
                        params={"date_margin_days": 15, "snow_threshold": 0.5, "min_snow_days_for_sod": 10})


def _listing(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = make_scd()
    return d, write_scd(d, tmp_path_factory.mktemp("scd"))


def test_names():
    assert scd_product_name(make_scd()) == NAME
    assert scd_product_name(make_scd(mission="S2")) == "LIS_S2-SNOW-L3B_T31TCH_20170901_20180831_V1-0"


def test_folder_content_and_cogs(written):
    _, path = written
    assert path.name == NAME
    assert _listing(path) == set(LAYER_FILES.values()) | {
        f"{NAME}_MTD.json", f"{NAME}_SCD.png", f"{NAME}.json", "input_dates.txt", "output_dates.txt"}
    assert [p.name for p in path.parent.iterdir()] == [NAME]
    for f in LAYER_FILES.values():
        ok, errors, _ = validate_cog(path / f)
        assert ok, (f, errors)
        with rasterio.open(path / f) as ds:
            assert (ds.dtypes[0], ds.nodata, ds.compression.name, ds.shape, ds.res) == \
                ("uint16", None, "deflate", (20, 25), (20.0, 20.0))


def test_date_files(written, tmp_path):
    _, path = written
    assert (path / "input_dates.txt").read_text() == "20170903\n20170910\n"
    days = (path / "output_dates.txt").read_text().split()
    assert len(days) == 365 and days[0] == "20170901" and days[-1] == "20180831" and "20180228" in days
    leap = write_scd(make_scd(date(2019, 9, 1), date(2020, 8, 31), (2, 2)), tmp_path)
    days = (leap / "output_dates.txt").read_text().split()
    assert len(days) == 366 and "20200229" in days


def test_round_trip(written):
    d, path = written
    back = read_scd(path)
    assert (back.tile, back.mission, back.start, back.stop, back.grid) == \
        ("T31TCH", "S2L8", date(2017, 9, 1), date(2018, 8, 31), d.grid)
    for k in ("scd", "sod", "smod", "nobs"):
        assert getattr(back, k).dtype == np.uint16
        np.testing.assert_array_equal(getattr(back, k), getattr(d, k))
    assert back.inputs == d.inputs and back.input_dates == d.input_dates and back.params == d.params
    assert read_scd(path / LAYER_FILES["SCD"]).n_days == 365  # any file of the folder


def test_metadata_statistics_by_hand(tmp_path):
    grid = Grid.from_origin(CRS, X0, Y0, 20.0, 2, 2)
    d = SnowDuration("T31TCH", "S2", date(2017, 9, 1), date(2018, 8, 31), grid,
                     scd=np.array([[0, 10], [365, 5]], np.uint16), sod=np.array([[0, 0], [3, 0]], np.uint16),
                     smod=np.array([[0, 0], [300, 0]], np.uint16), nobs=np.array([[0, 3], [4, 0]], np.uint16),
                     inputs=["a", "b", "c"], input_dates=[date(2017, 9, 3), date(2017, 9, 8), date(2017, 9, 8)])
    path = write_scd(d, tmp_path)
    meta = json.loads((path / "LIS_S2-SNOW-L3B_T31TCH_20170901_20180831_V1-0_MTD.json").read_text())
    assert meta["period"] == {"start": "2017-09-01", "stop": "2018-08-31", "n_days": 365}
    assert meta["inputs"] == [{"product_id": "a", "date": "2017-09-03"}, {"product_id": "b", "date": "2017-09-08"},
                              {"product_id": "c", "date": "2017-09-08"}]
    # observed pixels (NOBS > 0): SCD 10 and 365 -> mean 187.5, max 365; snow pixels (SCD > 0): 3;
    # SOD/SMOD pixels (SCD > 10): 1; NOBS mean (0 + 3 + 4 + 0) / 4
    assert meta["statistics"] == {"pixels": 4, "observed_pixels": 2, "scd_mean_observed": 187.5, "scd_max": 365,
                                  "snow_pixels": 3, "sod_smod_pixels": 1, "nobs_mean": 1.75, "nobs_max": 4}
    assert meta["crs"] == CRS and meta["shape"] == [2, 2]


def test_scd_colour_map_by_hand(tmp_path):
    scd = np.array([[0, 73, 365, 200]], np.uint16)
    nobs = np.array([[5, 5, 5, 0]], np.uint16)
    img = scd_colour_map(scd, nobs, 365)
    # brown (130, 85, 40) -> white-blue (225, 240, 255), linear in SCD / 365; 73 days = 0.2 of the way
    assert [tuple(int(v) for v in img[:, 0, i]) for i in range(4)] == \
        [(130, 85, 40), (149, 116, 83), (225, 240, 255), (0, 0, 0)]
    grid = Grid.from_origin(CRS, X0, Y0, 20.0, 4, 1)
    z = np.zeros((1, 4), np.uint16)
    path = write_scd(SnowDuration("T31TCH", "S2", date(2017, 9, 1), date(2018, 8, 31), grid, scd, z, z, nobs),
                     tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path / "LIS_S2-SNOW-L3B_T31TCH_20170901_20180831_V1-0_SCD.png") as ds:
            assert ds.driver == "PNG"
            np.testing.assert_array_equal(ds.read(), img)  # PNG is lossless


def test_stac_item(written):
    _, path = written
    item = json.loads((path / f"{NAME}.json").read_text())
    props = item["properties"]
    assert item["id"] == NAME and props["datetime"] is None
    assert props["start_datetime"] == "2017-09-01T00:00:00Z" and props["end_datetime"] == "2018-08-31T23:59:59Z"
    assert {a["href"] for a in item["assets"].values()} == {f"./{f}" for f in _listing(path) - {f"{NAME}.json"}}
    assert item["assets"]["SCD"]["proj:shape"] == [20, 25]
    assert item["assets"]["NOBS"]["raster:bands"][0]["data_type"] == "uint16"
    pytest.importorskip("jsonschema")
    from pystac import STACObjectType
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    assert JsonSchemaSTACValidator().validate_core(item, STACObjectType.ITEM, item["stac_version"])


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    real = scd_product.write_cog
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(scd_product, "write_cog", failing)
    with pytest.raises(OSError, match="simulated"):
        write_scd(make_scd(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_existing_product_is_not_overwritten(tmp_path):
    d = make_scd(shape=(3, 3))
    path = write_scd(d, tmp_path)
    with pytest.raises(InputError, match="already exists"):
        write_scd(d, tmp_path)
    assert write_scd(d, tmp_path, overwrite=True) == path
    assert [p.name for p in tmp_path.iterdir()] == [NAME]


def test_read_errors_and_missing_metadata(tmp_path):
    with pytest.raises(MissingFileError, match="no such file"):
        read_scd(tmp_path / "nope")
    other = tmp_path / "not_a_product"
    other.mkdir()
    with pytest.raises(InputError, match="LIS_<MISSION>-SNOW-L3B"):
        read_scd(other)
    path = write_scd(make_scd(shape=(3, 3)), tmp_path)
    (path / f"{NAME}_MTD.json").unlink()
    back = read_scd(path)  # no MTD.json: the input dates come from input_dates.txt
    assert back.input_dates == [date(2017, 9, 3), date(2017, 9, 10)] and back.inputs == []
    (path / LAYER_FILES["SMOD"]).unlink()
    with pytest.raises(MissingFileError, match="SNOW-SMOD"):
        read_scd(path)


def test_values_must_fit_uint16(tmp_path):
    d = make_scd(shape=(2, 2))
    d.scd = d.scd.astype(np.int32)
    d.scd[0, 0] = -1
    with pytest.raises(ValueError, match="uint16"):
        write_scd(d, tmp_path)
    assert list(tmp_path.iterdir()) == []

"""Sentinel-2 L1C SAFE reader against the two real T31TCJ products.

Expected values are literals read by eye from the products' MTD_MSIL1C.xml / MTD_TL.xml and from
the band files' headers (gdalinfo), not produced by the code under test.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from gpumaja.errors import CorruptFileError, MissingFileError, UnknownProductError
from gpumaja.io.bands import read_dn
from gpumaja.io.safe import is_safe, parse_time, read_safe
from gpumaja.model.grids import Grid

S2A = "S2A_MSIL1C_20240120T105341_N0510_R051_T31TCJ_20240120T125244"
S2B = "S2B_MSIL1C_20240305T104819_N0510_R051_T31TCJ_20240305T125347"
S2A_GRANULE = "GRANULE/L1C_T31TCJ_A044807_20240120T105433"
S2A_IMG = f"{S2A_GRANULE}/IMG_DATA/T31TCJ_20240120T105341"
ALL_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


@pytest.fixture(scope="module")
def s2a_path(s2_safe_dir) -> Path:
    return s2_safe_dir / f"{S2A}.SAFE"


@pytest.fixture(scope="module")
def s2a(s2a_path):
    return read_safe(s2a_path)


@pytest.fixture(scope="module")
def s2b(s2_safe_dir):
    return read_safe(s2_safe_dir / f"{S2B}.SAFE")


def copy_safe(src: Path, dst_dir: Path) -> Path:
    """A writable copy of a (read-only) SAFE."""
    dst = dst_dir / src.name
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for dirpath, dirs, files in os.walk(dst):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR * os.path.isdir(p))
    os.chmod(dst, 0o755)
    return dst


@pytest.fixture
def s2a_copy(s2a_path, tmp_path) -> Path:
    return copy_safe(s2a_path, tmp_path)


# ------------------------------------------------------------------------------- product metadata
def test_identity_s2a(s2a, s2a_path):
    assert s2a.sensor == "S2"
    assert s2a.platform == "SENTINEL-2A"
    assert s2a.tile == "T31TCJ"
    assert s2a.orbit == 51
    assert s2a.processing_baseline == "05.10"
    assert s2a.product_id == S2A
    assert s2a.path == s2a_path
    # MTD_TL.xml SENSING_TIME 2024-01-20T10:58:50.500329Z
    assert s2a.acquired == datetime(2024, 1, 20, 10, 58, 50, 500329, tzinfo=timezone.utc)
    assert s2a.acquired.utcoffset().total_seconds() == 0
    assert s2a.date_key == "SENTINEL-2A_20240120T105850"
    assert [b.name for b in s2a.bands] == ALL_BANDS


def test_identity_s2b(s2b):
    assert s2b.platform == "SENTINEL-2B"
    assert s2b.tile == "T31TCJ"
    assert s2b.orbit == 51
    assert s2b.processing_baseline == "05.10"
    assert s2b.product_id == S2B
    assert s2b.acquired == datetime(2024, 3, 5, 10, 58, 54, 168722, tzinfo=timezone.utc)


def test_radiometry(s2a, s2b):
    for p in (s2a, s2b):
        assert p.quantification == 10000.0
        assert p.nodata_dn == 0 and p.saturated_dn == 65535
        assert set(p.radiometry) == set(ALL_BANDS)
        for b in ALL_BANDS:
            r = p.radiometry[b]
            assert r.gain == pytest.approx(1e-4)
            assert r.offset == pytest.approx(-1000 / 10000)  # RADIO_ADD_OFFSET -1000
            assert r.sun_factor == 1.0
    # SOLAR_IRRADIANCE bandId 1 (B02) and 8 (B8A)
    assert s2a.radiometry["B02"].solar_irradiance == pytest.approx(1959.66)
    assert s2a.radiometry["B8A"].solar_irradiance == pytest.approx(955.32)
    assert s2a.radiometry["B12"].solar_irradiance == pytest.approx(85.25)
    assert s2b.radiometry["B02"].solar_irradiance == pytest.approx(1959.75)
    assert s2b.radiometry["B8A"].solar_irradiance == pytest.approx(953.93)


def test_extra(s2a):
    assert s2a.extra["window"] == "true"
    assert float(s2a.extra["earth_sun_u"]) == pytest.approx(1.03349009800943)
    assert s2a.extra["datastrip_id"] == "S2A_OPER_MSI_L1C_DS_2APS_20240120T125244_S20240120T105433_N05.10"
    assert all(isinstance(v, str) for v in s2a.extra.values())
    s2a.describe()  # JSON-able summary builds


def test_band_files(s2a, s2a_path):
    assert s2a.band_files["B8A"] == str(s2a_path / f"{S2A_IMG}_B8A.jp2")
    assert s2a.band_files["B01"] == str(s2a_path / f"{S2A_IMG}_B01.jp2")
    assert all(Path(f).is_file() for f in s2a.band_files.values())


# ------------------------------------------------------------------------------------------ grids
def test_grids_window(s2a, s2b):
    for p in (s2a, s2b):
        assert p.grids == {
            "R1": Grid.from_origin("EPSG:32631", 350000, 4850020, 10, 30, 30),
            "R2": Grid.from_origin("EPSG:32631", 350000, 4850020, 20, 15, 15),
            "R3": Grid.from_origin("EPSG:32631", 350000, 4850020, 60, 5, 5),
        }
        assert p.tile_grid == Grid.from_origin("EPSG:32631", 300000, 4900020, 10, 10980, 10980)


# ----------------------------------------------------------------------------------------- angles
def test_sun_angles(s2a, s2b):
    sun = s2a.sun
    assert sun.mean_zenith == pytest.approx(65.7554034542734, abs=1e-6)
    assert sun.mean_azimuth == pytest.approx(162.689190122297, abs=1e-6)
    assert sun.zenith.shape == sun.azimuth.shape == (23, 23)
    assert sun.zenith[0, 0] == pytest.approx(66.3733, abs=1e-4)
    assert sun.zenith[0, 22] == pytest.approx(66.1043, abs=1e-4)
    assert sun.zenith[22, 0] == pytest.approx(65.4081, abs=1e-4)
    assert sun.zenith[22, 22] == pytest.approx(65.1379, abs=1e-4)
    assert sun.zenith[11, 5] == pytest.approx(65.8289, abs=1e-4)
    assert sun.zenith[12, 0] == pytest.approx(65.8468, abs=1e-4)
    assert sun.azimuth[0, 0] == pytest.approx(162.026, abs=1e-4)
    assert sun.azimuth[22, 22] == pytest.approx(163.345, abs=1e-4)
    assert sun.azimuth[20, 0] == pytest.approx(162.0, abs=1e-4)
    assert s2b.sun.mean_zenith == pytest.approx(51.816936554549, abs=1e-6)
    assert s2b.sun.mean_azimuth == pytest.approx(158.39725727483, abs=1e-6)


def test_angle_grid_georeferencing(s2a):
    # the first sample sits on the tile's UL corner (300000, 4900020): cell centre of a 5 km grid
    expected = Grid("EPSG:32631", Affine(5000, 0, 297500, 0, -5000, 4902520), 23, 23)
    assert s2a.sun.grid == expected
    xs, ys = s2a.sun.grid.xy_centres()
    assert (xs[0], ys[0]) == (300000.0, 4900020.0)
    assert all(v.grid == expected for v in s2a.view.values())


def test_view_angles_merged(s2a):
    assert set(s2a.view) == set(ALL_BANDS)
    v = s2a.view["B02"]  # bandId 1
    assert v.zenith.shape == (23, 23)
    # row 2, col 1: detector 4 -> 3.95725, detector 5 -> 3.98261 (zenith); 97.7371 / 113.544 (azimuth)
    assert v.zenith[2, 1] == pytest.approx((3.95725 + 3.98261) / 2, abs=1e-5)
    assert v.azimuth[2, 1] == pytest.approx((97.7371 + 113.544) / 2, abs=1e-4)
    # row 2, col 6: detector 5 -> 2.09557, detector 6 -> 2.0344; azimuth 122.94 / 92.3265
    assert v.zenith[2, 6] == pytest.approx((2.09557 + 2.0344) / 2, abs=1e-5)
    assert v.azimuth[2, 6] == pytest.approx((122.94 + 92.3265) / 2, abs=1e-4)
    # single detector cells keep their value: row 0 col 0 detector 4 only; row 0 col 22 detector 9 only
    assert v.zenith[0, 0] == pytest.approx(4.56484, abs=1e-5)
    assert v.zenith[0, 22] == pytest.approx(4.06518, abs=1e-5)
    # Mean_Viewing_Incidence_Angle bandId 1
    assert v.mean_zenith == pytest.approx(2.51446171601234, abs=1e-6)
    assert v.mean_azimuth == pytest.approx(201.537396434153, abs=1e-6)
    # bandId 0 (B01) detector 4 row 0: 4.85525 4.4917
    assert s2a.view["B01"].zenith[0, 0] == pytest.approx(4.85525, abs=1e-5)
    assert s2a.view["B01"].mean_zenith == pytest.approx(3.1542472999194, abs=1e-6)
    assert s2a.view["B12"].mean_azimuth == pytest.approx(196.226400016417, abs=1e-6)


def test_no_nan_after_filling(s2a, s2b):
    for p in (s2a, s2b):
        for a in [p.sun, *p.view.values()]:
            assert not np.isnan(a.zenith).any() and not np.isnan(a.azimuth).any()
            assert a.zenith.dtype == np.float32
            assert (a.azimuth >= 0).all() and (a.azimuth < 360).all()
        for v in p.view.values():
            assert (v.zenith >= 0).all() and (v.zenith < 15).all()  # S2 viewing zenith stays under ~12 deg


# ------------------------------------------------------------------------------------------- pixels
def test_read_dn_shapes(s2a, s2b):
    for p in (s2a, s2b):
        for b, shape in (
            ("B02", (30, 30)),
            ("B08", (30, 30)),
            ("B05", (15, 15)),
            ("B8A", (15, 15)),
            ("B12", (15, 15)),
            ("B01", (5, 5)),
            ("B10", (5, 5)),
        ):
            a = read_dn(p, b)
            assert a.shape == shape and a.dtype == np.uint16


def test_read_dn_r1_is_the_file(s2a, s2a_path):
    a = read_dn(s2a, "B02")
    with rasterio.open(s2a_path / f"{S2A_IMG}_B02.jp2") as ds:
        ref = ds.read(1)
    assert a[0, 0] == ref[0, 0] == 2112  # gdalinfo/rasterio: first pixels 2112 2112 2112 2112
    assert a[1, 3] == ref[1, 3] == 2240
    np.testing.assert_array_equal(a, ref)


def test_read_dn_r2_r3_are_block_means(s2a, s2a_path):
    with rasterio.open(s2a_path / f"{S2A_IMG}_B05.jp2") as ds:
        b05 = ds.read(1).astype(np.float64)
    with rasterio.open(s2a_path / f"{S2A_IMG}_B01.jp2") as ds:
        b01 = ds.read(1).astype(np.float64)
    r2 = read_dn(s2a, "B05")
    for r, c in ((0, 0), (3, 7), (14, 14)):
        block = b05[2 * r : 2 * r + 2, 2 * c : 2 * c + 2]
        assert abs(float(r2[r, c]) - block.mean()) <= 0.5
    # first 2x2 block of B05: 2432 2176 / 2176 2176 -> 2240
    assert r2[0, 0] == 2240
    r3 = read_dn(s2a, "B01")
    for r, c in ((0, 0), (2, 3), (4, 4)):
        assert abs(float(r3[r, c]) - b01[6 * r : 6 * r + 6, 6 * c : 6 * c + 6].mean()) <= 0.5


def test_read_dn_int16_file(s2b, s2_safe_dir):
    # the S2B crops are stored as int16 with nodata 0; DN are returned as uint16
    a = read_dn(s2b, "B02")
    assert a[0, 0] == 6440 and a[0, 3] == 6216  # rasterio: first row 6440 6380 6314 6216


# ---------------------------------------------------------------------------------------- detection
def test_is_safe(s2a_path, tmp_path):
    assert is_safe(s2a_path)
    assert is_safe(s2a_path / "MTD_MSIL1C.xml")
    assert not is_safe(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    assert not is_safe(tmp_path / "notes.txt")
    (tmp_path / "fake.zip").write_bytes(b"not a zip")
    assert not is_safe(tmp_path / "fake.zip")
    assert not is_safe(tmp_path / "missing")


def test_unknown_product(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnknownProductError, match="notes.txt"):
        read_safe(tmp_path / "notes.txt")
    with pytest.raises(UnknownProductError):
        read_safe(tmp_path)


def test_parse_time():
    assert parse_time("2024-01-20T10:53:41.024Z", "x") == datetime(
        2024, 1, 20, 10, 53, 41, 24000, tzinfo=timezone.utc
    )
    assert parse_time("2024-01-20T10:53:41Z", "x") == datetime(2024, 1, 20, 10, 53, 41, tzinfo=timezone.utc)
    with pytest.raises(CorruptFileError, match="MTD_TL"):
        parse_time("20 January 2024", "MTD_TL.xml")


# ------------------------------------------------------------------------------------- bad products
def test_missing_band_file(s2a_copy):
    (s2a_copy / f"{S2A_IMG}_B05.jp2").unlink()
    with pytest.raises(MissingFileError, match="T31TCJ_20240120T105341_B05.jp2"):
        read_safe(s2a_copy)


def test_missing_mtd_files(s2a_copy):
    (s2a_copy / S2A_GRANULE / "MTD_TL.xml").unlink()
    with pytest.raises(MissingFileError, match="MTD_TL.xml"):
        read_safe(s2a_copy)
    (s2a_copy / "MTD_MSIL1C.xml").unlink()
    with pytest.raises(MissingFileError, match="MTD_MSIL1C.xml"):
        read_safe(s2a_copy)


def test_garbled_mtd_tl(s2a_copy):
    tl = s2a_copy / S2A_GRANULE / "MTD_TL.xml"
    tl.write_bytes(tl.read_bytes()[:5000] + b"<<garbage")
    with pytest.raises(CorruptFileError, match="MTD_TL.xml"):
        read_safe(s2a_copy)


def test_missing_required_element(s2a_copy):
    mtd = s2a_copy / "MTD_MSIL1C.xml"
    mtd.write_text(re.sub(r"<QUANTIFICATION_VALUE[^>]*>10000</QUANTIFICATION_VALUE>", "", mtd.read_text()))
    with pytest.raises(CorruptFileError, match=r"MTD_MSIL1C.xml.*QUANTIFICATION_VALUE"):
        read_safe(s2a_copy)


def test_missing_sun_grid(s2a_copy):
    tl = s2a_copy / S2A_GRANULE / "MTD_TL.xml"
    tl.write_text(re.sub(r"<Sun_Angles_Grid>.*?</Sun_Angles_Grid>", "", tl.read_text(), flags=re.DOTALL))
    with pytest.raises(CorruptFileError, match=r"MTD_TL.xml.*Sun_Angles_Grid"):
        read_safe(s2a_copy)


def test_truncated_jp2(s2a_copy):
    product = read_safe(s2a_copy)
    jp2 = s2a_copy / f"{S2A_IMG}_B03.jp2"
    data = jp2.read_bytes()
    jp2.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="T31TCJ_20240120T105341_B03.jp2"):
        read_dn(product, "B03")
    with pytest.raises(CorruptFileError, match="T31TCJ_20240120T105341_B03.jp2"):
        read_safe(s2a_copy)


def test_old_baseline_without_offsets(s2a_copy):
    mtd = s2a_copy / "MTD_MSIL1C.xml"
    text = mtd.read_text()
    text = text.replace(
        "<PROCESSING_BASELINE>05.10</PROCESSING_BASELINE>", "<PROCESSING_BASELINE>02.09</PROCESSING_BASELINE>"
    )
    text = re.sub(r"<Radiometric_Offset_List>.*?</Radiometric_Offset_List>", "", text, flags=re.DOTALL)
    mtd.write_text(text)
    p = read_safe(s2a_copy)
    assert p.processing_baseline == "02.09"
    assert all(p.radiometry[b].offset == 0.0 for b in ALL_BANDS)
    assert all(p.radiometry[b].gain == pytest.approx(1e-4) for b in ALL_BANDS)


def test_new_baseline_needs_offsets(s2a_copy):
    mtd = s2a_copy / "MTD_MSIL1C.xml"
    mtd.write_text(
        re.sub(
            r"<Radiometric_Offset_List>.*?</Radiometric_Offset_List>", "", mtd.read_text(), flags=re.DOTALL
        )
    )
    with pytest.raises(CorruptFileError, match=r"MTD_MSIL1C.xml.*Radiometric_Offset_List"):
        read_safe(s2a_copy)


def test_xxe_refused(s2a_copy, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    mtd = s2a_copy / "MTD_MSIL1C.xml"
    text = mtd.read_text()
    text = text.replace(
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{secret}">]>',
    ).replace("<SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>", "<SPACECRAFT_NAME>&xxe;</SPACECRAFT_NAME>")
    mtd.write_text(text)
    with pytest.raises(CorruptFileError, match="MTD_MSIL1C.xml") as err:
        read_safe(s2a_copy)
    assert "TOP SECRET" not in str(err.value)


def _rewrite_as_geotiff(path: Path, transform: Affine, width: int = 30, height: int = 30) -> None:
    """Replace a band file by a GeoTIFF (GDAL opens files by content) with another georeferencing."""
    path.unlink()
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="uint16",
        crs="EPSG:32631",
        transform=transform,
    ) as ds:
        ds.write(np.full((1, height, width), 1234, np.uint16))


def test_group_footprints_must_agree(s2a_copy):
    _rewrite_as_geotiff(s2a_copy / f"{S2A_IMG}_B06.jp2", Affine(10, 0, 351000, 0, -10, 4850020))
    with pytest.raises(CorruptFileError, match="T31TCJ_20240120T105341_B06.jp2"):
        read_safe(s2a_copy)


def test_footprint_outside_tile(s2a_copy):
    for b in ("B02", "B03", "B04", "B08"):
        _rewrite_as_geotiff(s2a_copy / f"{S2A_IMG}_{b}.jp2", Affine(10, 0, 200000, 0, -10, 4850020))
    with pytest.raises(CorruptFileError, match="outside the tile"):
        read_safe(s2a_copy)


def test_full_tile_style_files_at_nominal_resolution(s2a_copy):
    # a 20 m file at nominal resolution over the same window: the R2 grid is the file's own grid
    _rewrite_as_geotiff(s2a_copy / f"{S2A_IMG}_B05.jp2", Affine(20, 0, 350000, 0, -20, 4850020), 15, 15)
    p = read_safe(s2a_copy)
    assert p.grids["R2"] == Grid.from_origin("EPSG:32631", 350000, 4850020, 20, 15, 15)
    a = read_dn(p, "B05")
    assert a.shape == (15, 15) and (a == 1234).all()


def _grid_xml(tag: str, rows: list[str]) -> str:
    values = "".join(f"<VALUES>{r}</VALUES>" for r in rows)
    return f'<{tag}><COL_STEP unit="m">5000</COL_STEP><ROW_STEP unit="m">5000</ROW_STEP><Values_List>{values}</Values_List></{tag}>'


def test_view_merge_and_fill_synthetic():
    from gpumaja.io.safe_angles import read_sun_angles, read_view_angles
    from gpumaja.io.xml import parse_xml

    det1 = _grid_xml("Zenith", ["2 4 NaN", "NaN NaN NaN"]) + _grid_xml(
        "Azimuth", ["100 350 NaN", "NaN NaN NaN"]
    )
    det2 = _grid_xml("Zenith", ["NaN 6 8", "NaN NaN NaN"]) + _grid_xml(
        "Azimuth", ["NaN 10 200", "NaN NaN NaN"]
    )
    sun = _grid_xml("Zenith", ["NaN 31 32", "NaN 34 35"]) + _grid_xml("Azimuth", ["359.5 0.5 1", "2 3 4"])
    doc = (
        f"<r><Sun_Angles_Grid>{sun}</Sun_Angles_Grid>"
        f'<Viewing_Incidence_Angles_Grids bandId="1" detectorId="1">{det1}</Viewing_Incidence_Angles_Grids>'
        f'<Viewing_Incidence_Angles_Grids bandId="1" detectorId="2">{det2}</Viewing_Incidence_Angles_Grids></r>'
    ).encode()
    root = parse_xml(doc, "MTD_TL.xml")
    view = read_view_angles(root, "EPSG:32631", 300000, 4900020, "MTD_TL.xml")
    assert set(view) == {"B02"}
    v = view["B02"]
    # merged row 0: 2, (4+6)/2, 8; row 1 has no detector: filled from the cell above
    np.testing.assert_allclose(v.zenith, [[2, 5, 8], [2, 5, 8]], atol=1e-6)
    # azimuth: 350 and 10 average to 0 on the circle (not 180)
    az = v.azimuth
    assert az.shape == (2, 3) and (az >= 0).all() and (az < 360).all()
    assert az[0, 0] == pytest.approx(100) and az[1, 2] == pytest.approx(200)
    assert min(az[0, 1], 360 - az[0, 1]) < 1e-4 and min(az[1, 1], 360 - az[1, 1]) < 1e-4
    assert v.mean_zenith == pytest.approx(5.0)  # no Mean_Viewing_Incidence_Angle: NaN-mean of the grid
    assert v.grid == Grid("EPSG:32631", Affine(5000, 0, 297500, 0, -5000, 4902520), 3, 2)
    s = read_sun_angles(root, "EPSG:32631", 300000, 4900020, "MTD_TL.xml")
    np.testing.assert_allclose(s.zenith[:, 0], [31, 34])  # NaN cells take their nearest neighbour
    assert s.azimuth[0, 0] == pytest.approx(359.5)


def test_level2a_safe_is_refused(tmp_path):
    l2a = tmp_path / "S2A_MSIL2A_20240120T105341_N0510_R051_T31TCJ_20240120T140000.SAFE"
    l2a.mkdir()
    (l2a / "MTD_MSIL2A.xml").write_text("<x/>")
    with pytest.raises(UnknownProductError, match="Level-2A"):
        read_safe(l2a)
    empty = tmp_path / "EMPTY.SAFE"
    empty.mkdir()
    with pytest.raises(MissingFileError, match="MTD_MSIL1C.xml"):
        read_safe(empty)

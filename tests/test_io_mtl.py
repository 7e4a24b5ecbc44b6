"""Landsat MTL parsing: the three layouts normalise to the same facts; bad files fail with the key named.

The synthetic Collection-2 files below are written the way USGS writes them (group order, quoted
strings, unquoted numbers and dates in MTL.txt; every leaf a string in MTL.json). The builders are
reused by tests/test_io_landsat.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.mtl import (
    LAYOUT_C2_JSON,
    LAYOUT_C2_TXT,
    LAYOUT_PRE_COLLECTION,
    parse_mtl,
    parse_odl,
)


class Lit(str):
    """A value USGS writes without quotes in MTL.txt (numbers, dates)."""


C2_PRODUCT_ID = "LC09_L1TP_198030_20240601_20240601_02_T1"
C2_SCENE_ID = "LC91980302024153LGN00"
C2_SUN_ELEVATION = "63.21234567"
C2_SUN_AZIMUTH = "136.51234567"


def c2_groups(
    stem: str = C2_PRODUCT_ID,
    *,
    angle_bands: bool = True,
    ang_file: bool = True,
    spacecraft: str = "LANDSAT_9",
    processing_level: str = "L1TP",
    drop: tuple[str, ...] = (),
) -> list[tuple[str, list[tuple[str, str]]]]:
    """The groups of a Collection-2 Level-1 MTL, in USGS order. `drop` removes keys everywhere."""
    contents: list[tuple[str, str]] = [
        ("ORIGIN", "Image courtesy of the U.S. Geological Survey"),
        ("DIGITAL_OBJECT_IDENTIFIER", "https://doi.org/10.5066/P975CC9B"),
        ("LANDSAT_PRODUCT_ID", stem),
        ("PROCESSING_LEVEL", processing_level),
        ("COLLECTION_NUMBER", Lit("02")),
        ("COLLECTION_CATEGORY", "T1"),
        ("OUTPUT_FORMAT", "GEOTIFF"),
    ]
    contents += [(f"FILE_NAME_BAND_{n}", f"{stem}_B{n}.TIF") for n in range(1, 12)]
    contents += [
        ("FILE_NAME_QUALITY_L1_PIXEL", f"{stem}_QA_PIXEL.TIF"),
        ("FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION", f"{stem}_QA_RADSAT.TIF"),
    ]
    if ang_file:
        contents.append(("FILE_NAME_ANGLE_COEFFICIENT", f"{stem}_ANG.txt"))
    if angle_bands:
        contents += [
            ("FILE_NAME_ANGLE_SENSOR_AZIMUTH_BAND_4", f"{stem}_VAA.TIF"),
            ("FILE_NAME_ANGLE_SENSOR_ZENITH_BAND_4", f"{stem}_VZA.TIF"),
            ("FILE_NAME_ANGLE_SOLAR_AZIMUTH_BAND_4", f"{stem}_SAA.TIF"),
            ("FILE_NAME_ANGLE_SOLAR_ZENITH_BAND_4", f"{stem}_SZA.TIF"),
        ]
    contents += [
        ("FILE_NAME_METADATA_ODL", f"{stem}_MTL.txt"),
        ("FILE_NAME_METADATA_XML", f"{stem}_MTL.xml"),
        ("FILE_NAME_CPF", "LC09CPF_20240401_20240630_02.03"),
        ("FILE_NAME_BPF_OLI", "LO9BPF20240601102822_20240601120337.01"),
        ("FILE_NAME_BPF_TIRS", "LT9BPF20240601102403_20240601120338.01"),
        ("FILE_NAME_RLUT", "LC09RLUT_20220310_20531231_02_02.h5"),
    ]
    contents += [(f"DATA_TYPE_BAND_{n}", "UINT16") for n in range(1, 12)]
    image = [
        ("SPACECRAFT_ID", spacecraft),
        ("SENSOR_ID", "OLI_TIRS"),
        ("WRS_TYPE", Lit("2")),
        ("WRS_PATH", Lit("198")),
        ("WRS_ROW", Lit("30")),
        ("NADIR_OFFNADIR", "NADIR"),
        ("TARGET_WRS_PATH", Lit("198")),
        ("TARGET_WRS_ROW", Lit("30")),
        ("DATE_ACQUIRED", Lit("2024-06-01")),
        ("SCENE_CENTER_TIME", "10:37:41.6421360Z"),
        ("STATION_ID", "LGN"),
        ("CLOUD_COVER", Lit("12.34")),
        ("CLOUD_COVER_LAND", Lit("11.02")),
        ("IMAGE_QUALITY_OLI", Lit("9")),
        ("IMAGE_QUALITY_TIRS", Lit("9")),
        ("ROLL_ANGLE", Lit("-0.001")),
        ("SUN_AZIMUTH", Lit(C2_SUN_AZIMUTH)),
        ("SUN_ELEVATION", Lit(C2_SUN_ELEVATION)),
        ("EARTH_SUN_DISTANCE", Lit("1.0140327")),
        ("TRUNCATION_OLI", "UPPER"),
    ]
    projection = [
        ("MAP_PROJECTION", "UTM"),
        ("DATUM", "WGS84"),
        ("ELLIPSOID", "WGS84"),
        ("UTM_ZONE", Lit("31")),
        ("GRID_CELL_SIZE_PANCHROMATIC", Lit("15.00")),
        ("GRID_CELL_SIZE_REFLECTIVE", Lit("30.00")),
        ("GRID_CELL_SIZE_THERMAL", Lit("30.00")),
        ("REFLECTIVE_LINES", Lit("7821")),
        ("REFLECTIVE_SAMPLES", Lit("7691")),
        ("ORIENTATION", "NORTH_UP"),
        ("CORNER_UL_LAT_PRODUCT", Lit("44.71226")),
        ("CORNER_UL_LON_PRODUCT", Lit("0.22563")),
        ("CORNER_UL_PROJECTION_X_PRODUCT", Lit("288300.000")),
        ("CORNER_UL_PROJECTION_Y_PRODUCT", Lit("4954500.000")),
    ]
    record = [
        ("ORIGIN", "Image courtesy of the U.S. Geological Survey"),
        ("DIGITAL_OBJECT_IDENTIFIER", "https://doi.org/10.5066/P975CC9B"),
        ("REQUEST_ID", "1869217_00004"),
        ("LANDSAT_SCENE_ID", C2_SCENE_ID),
        ("LANDSAT_PRODUCT_ID", stem),
        ("PROCESSING_LEVEL", processing_level),
        ("COLLECTION_CATEGORY", "T1"),
        ("OUTPUT_FORMAT", "GEOTIFF"),
        ("DATE_PRODUCT_GENERATED", Lit("2024-06-01T14:50:35Z")),
        ("PROCESSING_SOFTWARE_VERSION", "LPGS_16.4.0"),
    ]
    rescaling = [(f"RADIANCE_MULT_BAND_{n}", Lit(f"{1.2e-2 - n * 1e-3:.4E}")) for n in range(1, 12)]
    rescaling += [(f"RADIANCE_ADD_BAND_{n}", Lit(f"{-60.0 + n:.5f}")) for n in range(1, 12)]
    # distinct per band so that a band mix-up shows
    rescaling += [(f"REFLECTANCE_MULT_BAND_{n}", Lit(f"{2.0 + n / 100:.4f}E-05")) for n in range(1, 10)]
    rescaling += [(f"REFLECTANCE_ADD_BAND_{n}", Lit(f"{-0.1 - n / 1000:.6f}")) for n in range(1, 10)]
    thermal = [
        ("K1_CONSTANT_BAND_10", Lit("799.0284")),
        ("K2_CONSTANT_BAND_10", Lit("1329.2405")),
    ]
    groups = [
        ("PRODUCT_CONTENTS", contents),
        ("IMAGE_ATTRIBUTES", image),
        ("PROJECTION_ATTRIBUTES", projection),
        ("LEVEL1_PROCESSING_RECORD", record),
        ("LEVEL1_RADIOMETRIC_RESCALING", rescaling),
        ("LEVEL1_THERMAL_CONSTANTS", thermal),
        ("LEVEL1_PROJECTION_PARAMETERS", [("MAP_PROJECTION", "UTM"), ("UTM_ZONE", Lit("31"))]),
    ]
    return [(g, [(k, v) for k, v in kv if k not in drop]) for g, kv in groups]


def c2_mtl_txt(groups) -> str:
    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for g, kv in groups:
        lines.append(f"  GROUP = {g}")
        for k, v in kv:
            lines.append(f"    {k} = {v}" if isinstance(v, Lit) else f'    {k} = "{v}"')
        lines.append(f"  END_GROUP = {g}")
    lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END", ""]
    return "\n".join(lines)


def c2_mtl_json(groups) -> str:
    doc = {"LANDSAT_METADATA_FILE": {g: {k: str(v) for k, v in kv} for g, kv in groups}}
    return json.dumps(doc, indent=2)


C2_ACQUIRED = datetime(2024, 6, 1, 10, 37, 41, 642136, tzinfo=timezone.utc)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --------------------------------------------------------------------------------------------------


def test_c2_txt_facts(tmp_path):
    m = parse_mtl(_write(tmp_path, f"{C2_PRODUCT_ID}_MTL.txt", c2_mtl_txt(c2_groups())))
    assert m.layout == LAYOUT_C2_TXT
    assert m.processing_baseline == "C2"
    assert m.spacecraft == "LANDSAT_9"
    assert m.sensor_id == "OLI_TIRS"
    assert m.product_id == C2_PRODUCT_ID
    assert m.scene_id == C2_SCENE_ID
    assert m.processing_level == "L1TP"
    assert (m.wrs_path, m.wrs_row, m.tile) == (198, 30, "198030")
    assert m.acquired == C2_ACQUIRED
    assert m.acquired.utcoffset().total_seconds() == 0
    assert m.sun_elevation == 63.21234567
    assert m.sun_azimuth == 136.51234567
    assert m.earth_sun_distance == 1.0140327
    assert m.band_files[4] == f"{C2_PRODUCT_ID}_B4.TIF"
    assert set(m.band_files) == set(range(1, 12))
    assert m.reflectance_mult[4] == 2.04e-05
    assert m.reflectance_add[4] == -0.104
    assert m.reflectance_mult[9] == 2.09e-05
    assert m.reflectance_add[1] == -0.101
    assert m.angle_files == {
        "VAA": f"{C2_PRODUCT_ID}_VAA.TIF",
        "VZA": f"{C2_PRODUCT_ID}_VZA.TIF",
        "SAA": f"{C2_PRODUCT_ID}_SAA.TIF",
        "SZA": f"{C2_PRODUCT_ID}_SZA.TIF",
    }
    assert m.ang_file == f"{C2_PRODUCT_ID}_ANG.txt"
    assert m.qa_files["QA_RADSAT"] == f"{C2_PRODUCT_ID}_QA_RADSAT.TIF"
    assert m.collection_number == "02"
    assert m.collection_category == "T1"
    assert m.processing_software == "LPGS_16.4.0"


def _facts(m):
    d = dict(vars(m))
    d.pop("path")
    d.pop("layout")
    return d


def test_c2_json_parses_to_the_same_facts_as_txt(tmp_path):
    groups = c2_groups()
    t = parse_mtl(_write(tmp_path, "a_MTL.txt", c2_mtl_txt(groups)))
    j = parse_mtl(_write(tmp_path, "a_MTL.json", c2_mtl_json(groups)))
    assert j.layout == LAYOUT_C2_JSON
    assert _facts(j) == _facts(t)


def test_c2_json_with_numeric_leaves(tmp_path):
    doc = json.loads(c2_mtl_json(c2_groups()))
    doc["LANDSAT_METADATA_FILE"]["IMAGE_ATTRIBUTES"]["WRS_PATH"] = 198
    doc["LANDSAT_METADATA_FILE"]["IMAGE_ATTRIBUTES"]["SUN_ELEVATION"] = 63.21234567
    doc["LANDSAT_METADATA_FILE"]["LEVEL1_RADIOMETRIC_RESCALING"]["REFLECTANCE_MULT_BAND_4"] = 2.04e-05
    m = parse_mtl(_write(tmp_path, "b_MTL.json", json.dumps(doc)))
    assert (m.wrs_path, m.sun_elevation, m.reflectance_mult[4]) == (198, 63.21234567, 2.04e-05)


def test_pre_collection_real_mtl(landsat_crop_dir):
    m = parse_mtl(landsat_crop_dir / "LC80200392015216LGN00_MTL.txt")
    # literals read from the file itself
    assert m.layout == LAYOUT_PRE_COLLECTION
    assert m.processing_baseline == "PRE-COLLECTION"
    assert m.spacecraft == "LANDSAT_8"
    assert m.product_id == m.scene_id == "LC80200392015216LGN00"
    assert (m.wrs_path, m.wrs_row) == (20, 39)
    assert m.acquired == datetime(2015, 8, 4, 16, 19, 21, 791742, tzinfo=timezone.utc)
    assert m.sun_elevation == 64.74360932
    assert m.sun_azimuth == 115.87210674
    assert m.reflectance_mult[5] == 2.0e-05
    assert m.reflectance_add[5] == -0.1
    assert m.band_files[9] == "LC80200392015216LGN00_B9.TIF"
    assert m.processing_software == "LPGS_2.5.1"
    assert m.angle_files == {} and m.ang_file is None
    assert m.qa_files == {"BQA": "LC80200392015216LGN00_BQA.TIF"}


def test_collection1_layout_is_c1(tmp_path, landsat_crop_dir):
    text = (landsat_crop_dir / "LC80200392015216LGN00_MTL.txt").read_text()
    text = text.replace('    STATION_ID = "LGN"\n', '    STATION_ID = "LGN"\n    COLLECTION_NUMBER = 01\n', 1)
    assert "COLLECTION_NUMBER = 01" in text
    m = parse_mtl(_write(tmp_path, "c1_MTL.txt", text))
    assert m.processing_baseline == "C1"
    assert m.layout == LAYOUT_PRE_COLLECTION


@pytest.mark.parametrize(
    "key",
    ["SUN_ELEVATION", "SUN_AZIMUTH", "DATE_ACQUIRED", "SCENE_CENTER_TIME", "WRS_ROW", "SPACECRAFT_ID",
     "FILE_NAME_BAND_9", "REFLECTANCE_MULT_BAND_4", "REFLECTANCE_ADD_BAND_7"],
)
@pytest.mark.parametrize("fmt", ["txt", "json"])
def test_missing_required_key(tmp_path, key, fmt):
    groups = c2_groups(drop=(key,))
    text = c2_mtl_txt(groups) if fmt == "txt" else c2_mtl_json(groups)
    path = _write(tmp_path, f"x_MTL.{fmt}", text)
    with pytest.raises(CorruptFileError) as err:
        parse_mtl(path)
    assert key in str(err.value)
    assert "x_MTL." + fmt in str(err.value)
    assert err.value.path == path


def test_missing_both_ids(tmp_path):
    groups = c2_groups(drop=("LANDSAT_PRODUCT_ID", "LANDSAT_SCENE_ID"))
    path = _write(tmp_path, "x_MTL.txt", c2_mtl_txt(groups))
    with pytest.raises(CorruptFileError, match="LANDSAT_PRODUCT_ID"):
        parse_mtl(path)


def test_optional_keys_may_be_absent(tmp_path):
    drop = ("LANDSAT_PRODUCT_ID", "EARTH_SUN_DISTANCE", "PROCESSING_SOFTWARE_VERSION", "FILE_NAME_BAND_8",
            "FILE_NAME_ANGLE_COEFFICIENT")
    m = parse_mtl(_write(tmp_path, "x_MTL.txt", c2_mtl_txt(c2_groups(drop=drop))))
    assert m.product_id == C2_SCENE_ID  # falls back to the scene id
    assert m.earth_sun_distance is None and m.processing_software is None and m.ang_file is None
    assert 8 not in m.band_files


@pytest.mark.parametrize(
    "old, new, needle",
    [
        ("SUN_ELEVATION = 63.21234567", "SUN_ELEVATION = 63.2x", "SUN_ELEVATION"),
        ("WRS_PATH = 198", "WRS_PATH = one-nine-eight", "WRS_PATH"),
        ("DATE_ACQUIRED = 2024-06-01", "DATE_ACQUIRED = 01/06/2024", "DATE_ACQUIRED"),
        ('SCENE_CENTER_TIME = "10:37:41.6421360Z"', 'SCENE_CENTER_TIME = "noon"', "SCENE_CENTER_TIME"),
        ("REFLECTANCE_ADD_BAND_3 = -0.103000", "REFLECTANCE_ADD_BAND_3 = nan", "REFLECTANCE_ADD_BAND_3"),
        ("  END_GROUP = IMAGE_ATTRIBUTES\n", "", "IMAGE_ATTRIBUTES"),
        ('    SPACECRAFT_ID = "LANDSAT_9"\n', "    SPACECRAFT_ID LANDSAT_9\n", "line"),
    ],
)
def test_garbled_txt(tmp_path, old, new, needle):
    text = c2_mtl_txt(c2_groups())
    assert old in text
    path = _write(tmp_path, "g_MTL.txt", text.replace(old, new, 1))
    with pytest.raises(CorruptFileError) as err:
        parse_mtl(path)
    assert needle in str(err.value) and "g_MTL.txt" in str(err.value)


def test_truncated_txt(tmp_path):
    text = c2_mtl_txt(c2_groups())
    path = _write(tmp_path, "t_MTL.txt", text[: len(text) // 2].rsplit("\n", 1)[0])
    with pytest.raises(CorruptFileError, match="t_MTL.txt"):
        parse_mtl(path)


@pytest.mark.parametrize(
    "text", ['{"LANDSAT_METADATA_FILE": {"PRODUCT_CONTENTS": ', '{"OTHER": {}}', "[1, 2]"]
)
def test_garbled_json(tmp_path, text):
    path = _write(tmp_path, "j_MTL.json", text)
    with pytest.raises(CorruptFileError, match="j_MTL.json"):
        parse_mtl(path)


def test_not_an_mtl_and_binary(tmp_path):
    with pytest.raises(CorruptFileError, match="L1_METADATA_FILE"):
        parse_mtl(_write(tmp_path, "n_MTL.txt", "GROUP = SOMETHING_ELSE\nEND_GROUP = SOMETHING_ELSE\nEND\n"))
    b = tmp_path / "bin_MTL.txt"
    b.write_bytes(b"\xff\xfe\x00GROUP")
    with pytest.raises(CorruptFileError, match="bin_MTL.txt"):
        parse_mtl(b)


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError) as err:
        parse_mtl(tmp_path / "nope_MTL.txt")
    assert isinstance(err.value, InputError) and "nope_MTL.txt" in str(err.value)


def test_odl_multiline_lists_and_quoted_items():
    text = """GROUP = EPHEMERIS
  NUMBER_OF_POINTS = 4
  EPHEMERIS_TIME = (71229.000000, 71230.000000, 71231.000000,
                    71232.000000)
  EPHEMERIS_ECEF_X = ( 6171754.112625,  -6168246.529668,
                       6164732.011328,
                       6161210.561472)
  BAND_LIST = ("1", "2, not split", "3")
END_GROUP = EPHEMERIS
END
"""
    tree = parse_odl(text, "x_ANG.txt")
    eph = tree["EPHEMERIS"]
    assert eph["NUMBER_OF_POINTS"] == "4"
    assert [float(v) for v in eph["EPHEMERIS_TIME"]] == [71229.0, 71230.0, 71231.0, 71232.0]
    assert [float(v) for v in eph["EPHEMERIS_ECEF_X"]] == [6171754.112625, -6168246.529668, 6164732.011328,
                                                          6161210.561472]
    assert eph["BAND_LIST"] == ["1", "2, not split", "3"]


def test_odl_unclosed_list():
    with pytest.raises(CorruptFileError, match="EPHEMERIS_TIME"):
        parse_odl("GROUP = E\n  EPHEMERIS_TIME = (1.0, 2.0,\n  3.0\nEND_GROUP = E\nEND\n", "x_ANG.txt")

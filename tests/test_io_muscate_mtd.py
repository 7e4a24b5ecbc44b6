"""MTD_ALL.xml: structure and values of ours (maja-l2a.md §5, §1.12), and parsing of a real Theia file."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from gpumaja.errors import CorruptFileError, MissingFileError
from gpumaja.io.muscate import product_files, product_name
from gpumaja.io.muscate_mtd import muscate_band_id, read_mtd, write_mtd
from gpumaja.io.xml import parse_xml
from tests.l2a_factory import make_product, make_result

THEIA = "real/theia_l2a_metadata/SENTINEL2A_20170203-071245-541_L2A_T38KPD_C_V1-0"
PRODUCED = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=timezone.utc)


def _doc(result, name=None, files=None):
    name = name or product_name(result)
    files = product_files(name, result) if files is None else files
    return parse_xml(write_mtd(result, name, files, production_date=PRODUCED)), name, files


def _text(root, path):
    el = root.find(path)
    assert el is not None, path
    return el.text


def _written(tmp_path: Path, result) -> dict:
    name = product_name(result)
    path = tmp_path / f"{name}_MTD_ALL.xml"
    path.write_bytes(write_mtd(result, name, product_files(name, result), production_date=PRODUCED))
    return read_mtd(path)


def test_band_ids():
    assert [muscate_band_id(b) for b in ("B02", "B08", "B8A", "B11", "B1", "B7")] == \
        ["B2", "B8", "B8A", "B11", "B1", "B7"]


def test_structure_and_identification():
    root, name, _ = _doc(make_result())
    assert root.tag == "Muscate_Metadata_Document"
    assert [c.tag for c in root] == [
        "Metadata_Identification", "Dataset_Identification", "Product_Characteristics",
        "Product_Organisation", "Geoposition_Informations", "Geometric_Informations",
        "Radiometric_Informations", "Quality_Informations", "Production_Informations"]
    fmt = root.find("Metadata_Identification/METADATA_FORMAT")
    assert (fmt.text, fmt.get("version")) == ("METADATA_MUSCATE", "1.16")
    assert _text(root, "Dataset_Identification/IDENTIFIER") == "SENTINEL2A_20240120-105850-500_L2A_T31TCJ_C"
    zone = root.find("Dataset_Identification/GEOGRAPHICAL_ZONE")
    assert (zone.text, zone.get("type")) == ("T31TCJ", "Tile")
    pc = "Product_Characteristics/"
    assert _text(root, pc + "PRODUCT_ID") == name == "SENTINEL2A_20240120-105850-500_L2A_T31TCJ_C_V1-0"
    assert _text(root, pc + "ACQUISITION_DATE") == "2024-01-20T10:58:50.500Z"
    assert _text(root, pc + "PRODUCTION_DATE") == "2025-03-04T05:06:07.891011Z"
    assert _text(root, pc + "PLATFORM") == "SENTINEL2A"
    assert _text(root, pc + "ORBIT_NUMBER") == "51"
    assert [e.text for e in root.findall(pc + "Band_Global_List/BAND_ID")] == \
        ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    groups = {g.get("group_id"): [e.text for e in g.findall("Band_List/BAND_ID")]
              for g in root.findall(pc + "Band_Group_List/Group")}
    assert groups == {"R1": ["B2", "B3", "B4", "B8"], "R2": ["B5", "B6", "B7", "B8A", "B11", "B12"]}


def test_image_list():
    root, name, _ = _doc(make_result())
    org = root.find("Product_Organisation/Muscate_Product")
    qkl = org.find("QUICKLOOK")
    assert (qkl.text, qkl.get("bands_id")) == (f"{name}_QKL_ALL.jpg", "B4,B3,B2")
    natures = [i.findtext("Image_Properties/NATURE") for i in org.findall("Image_List/Image")]
    assert natures == ["Surface_Reflectance", "Flat_Reflectance", "Water_Vapor_Content",
                       "Aerosol_Optical_Thickness"]
    sre = org.findall("Image_List/Image")[0]
    assert sre.findtext("Image_Properties/ENCODING") == "int16"
    assert {f.get("band_id"): f.text for f in sre.findall("Image_File_List/IMAGE_FILE")}["B8A"] == \
        f"{name}_SRE_B8A.tif"
    for image, band_number in zip(org.findall("Image_List/Image")[2:], ("1", "2")):
        files = image.findall("Image_File_List/IMAGE_FILE")
        assert [(f.get("group_id"), f.get("band_number"), f.text) for f in files] == [
            ("R1", band_number, f"{name}_ATB_R1.tif"), ("R2", band_number, f"{name}_ATB_R2.tif")]


def test_mask_natures_and_bits_follow_the_mtd_template():
    root, name, _ = _doc(make_result())
    masks = {m.findtext("Mask_Properties/NATURE"): m.findall("Mask_File_List/MASK_FILE")
             for m in root.findall("Product_Organisation/Muscate_Product/Mask_List/Mask")}
    # expected (file code, 1-based bit_number) per nature, from maja-l2a.md §1.12 and the MTD template
    expected = {
        "WVC_Interpolation": ("IAB", "1"), "AOT_Interpolation": ("IAB", "2"),
        "Detailed_Cloud": ("CLM", None), "Edge": ("EDG", None),
        "Water": ("MG2", "1"), "Cloud": ("MG2", "2"), "Snow": ("MG2", "3"), "Cloud_Shadow": ("MG2", "4"),
        "Topography_Shadow": ("MG2", "5"), "Hidden_Surface": ("MG2", "6"), "Sun_Too_Low": ("MG2", "7"),
        "Tangent_Sun": ("MG2", "8"),
    }
    assert set(masks) == set(expected) | {"Saturation"}
    for nature, (code, bit) in expected.items():
        got = [(f.get("group_id"), f.get("bit_number"), f.text) for f in masks[nature]]
        assert got == [(g, bit, f"MASKS/{name}_{code}_{g}.tif") for g in ("R1", "R2")], nature
    sat = [(f.get("band_id"), f.get("group_id"), f.get("bit_number")) for f in masks["Saturation"]]
    assert sat == [("B2", "R1", "1"), ("B3", "R1", "2"), ("B4", "R1", "3"), ("B8", "R1", "4"),
                   ("B5", "R2", "1"), ("B6", "R2", "2"), ("B7", "R2", "3"), ("B8A", "R2", "4"),
                   ("B11", "R2", "5"), ("B12", "R2", "6")]


def test_geoposition_geometry_radiometry_quality():
    result = make_result(cloud_percent=12.7, snow_percent=3.4)
    root, _name, _ = _doc(result)
    assert _text(root, "Geoposition_Informations/Coordinate_Reference_System/GEO_TABLES") == "EPSG"
    hcs = "Geoposition_Informations/Coordinate_Reference_System/Horizontal_Coordinate_System/"
    assert _text(root, hcs + "HORIZONTAL_CS_CODE") == "32631"
    assert _text(root, hcs + "HORIZONTAL_CS_NAME") == "WGS 84 / UTM zone 31N"
    r2 = root.find("Geoposition_Informations/Geopositioning/Group_Geopositioning_List/"
                   "Group_Geopositioning[@group_id='R2']")
    assert [r2.findtext(t) for t in ("ULX", "ULY", "XDIM", "YDIM", "NROWS", "NCOLS")] == \
        ["300000", "4900020", "20", "-20", "20", "25"]
    ul = root.find("Geoposition_Informations/Geopositioning/Global_Geopositioning/Point[@name='upperLeft']")
    assert (ul.findtext("X"), ul.findtext("Y")) == ("300000.0", "4900020.0")
    # UTM 31N, 300 km easting, 4900 km northing: about 44.23 N, 0.50 E
    assert float(ul.findtext("LAT")) == pytest.approx(44.226, abs=0.01)
    assert float(ul.findtext("LON")) == pytest.approx(0.496, abs=0.01)
    mv = "Geometric_Informations/Mean_Value_List/"
    assert float(_text(root, mv + "Sun_Angles/ZENITH_ANGLE")) == pytest.approx(30.7)
    assert float(_text(root, mv + "Sun_Angles/AZIMUTH_ANGLE")) == pytest.approx(160.0)
    views = root.findall(mv + "Mean_Viewing_Incidence_Angle_List/Mean_Viewing_Incidence_Angle")
    assert [v.get("band_id") for v in views] == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11",
                                                 "B12"]
    # the factory gives band i of the S2 list (B01 = 0) zenith 5 + 0.1 i: B2 -> 5.1
    assert float(views[0].findtext("ZENITH_ANGLE")) == pytest.approx(5.1)
    zen_rows = root.findall(
        "Geometric_Informations/Angles_Grids_List/Sun_Angles_Grids/Zenith/Values_List/VALUES")
    assert [float(v) for v in zen_rows[0].text.split()] == pytest.approx([30.0, 30.5, 31.0])
    rad = "Radiometric_Informations/"
    assert _text(root, rad + "REFLECTANCE_QUANTIFICATION_VALUE") == "10000"
    assert _text(root, rad + "WATER_VAPOR_CONTENT_QUANTIFICATION_VALUE") == "20"  # 1 / 0.05
    assert _text(root, rad + "AEROSOL_OPTICAL_THICKNESS_QUANTIFICATION_VALUE") == "200"  # 1 / 0.005
    special = {e.get("name"): e.text for e in root.findall(rad + "Special_Values_List/SPECIAL_VALUE")}
    assert special == {"nodata": "-10000", "water_vapor_content_nodata": "0",
                       "aerosol_optical_thickness_nodata": "0"}
    b4 = root.find(rad + "Spectral_Band_Informations_List/Spectral_Band_Informations[@band_id='B4']")
    assert b4.findtext("SOLAR_IRRADIANCE") == "1512.06"
    assert b4.findtext("SPATIAL_RESOLUTION") == "10"
    assert b4.findtext("Wavelength/CENTRAL") == "665"
    q = {e.get("name"): e.text for e in root.iter("QUALITY_INDEX")}
    # MAJA writes int(rate)
    assert q == {"CloudPercent": "12", "SnowPercent": "3", "RainDetected": "false",
                 "HotSpotDetected": "true", "SunGlintDetected": "false"}
    flags = {p.findtext("NAME"): p.findtext("VALUE") for p in root.iter("Processing_Information")}
    assert flags["Validity_Flag"] == "L2VALD"
    assert flags["AOT_Method"] == "MULTISPECTRAL"


def test_not_valid_product_lists_no_file():
    result = make_result(cloud_percent=95.0)
    assert not result.valid
    root, _name, _ = _doc(result, files={})
    org = root.find("Product_Organisation/Muscate_Product")
    assert org.find("QUICKLOOK") is None
    assert list(org.find("Image_List")) == [] and list(org.find("Mask_List")) == []
    flags = {p.findtext("NAME"): p.findtext("VALUE") for p in root.iter("Processing_Information")}
    assert flags["Validity_Flag"] == "L2NOTV"


def test_landsat_names_and_single_group(tmp_path):
    result = make_result(make_product("LANDSAT"))
    root, name, files = _doc(result)
    assert name == "LANDSAT8-OLITIRS-XS_20150804-155911-123_L2A_020-039_C_V1-0"
    zone = root.find("Dataset_Identification/GEOGRAPHICAL_ZONE")
    assert (zone.text, zone.get("type")) == ("020-039", "Path-Row")
    assert _text(root, "Product_Characteristics/PLATFORM") == "LANDSAT8"
    groups = root.findall("Product_Characteristics/Band_Group_List/Group")
    assert [g.get("group_id") for g in groups] == ["XS"]
    assert files["ATB_XS"] == f"{name}_ATB_XS.tif" and files["CLM_XS"] == f"MASKS/{name}_CLM_XS.tif"
    meta = _written(tmp_path, result)
    assert meta["groups"] == {"XS": ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]}
    assert meta["group_geopositioning"]["XS"]["xdim"] == 30.0


def test_round_trip_through_read_mtd(tmp_path):
    result = make_result()
    meta = _written(tmp_path, result)
    name = product_name(result)
    assert meta["product_id"] == name
    assert meta["platform"] == "SENTINEL2A"
    assert meta["acquired"] == datetime(2024, 1, 20, 10, 58, 50, 500000, tzinfo=timezone.utc)
    assert meta["production_date"] == PRODUCED
    assert meta["tile"] == "T31TCJ" and meta["orbit"] == 51
    assert meta["quantification"] == {"reflectance": 10000.0, "water_vapour": 20.0, "aot": 200.0}
    assert meta["nodata"] == {"reflectance": -10000.0, "water_vapour": 0.0, "aot": 0.0}
    assert meta["cloud_percent"] == 12.0 and meta["snow_percent"] == 3.0
    assert meta["images"]["SRE"]["B2"] == f"{name}_SRE_B2.tif"
    assert meta["images"]["ATB"] == {"R1": f"{name}_ATB_R1.tif", "R2": f"{name}_ATB_R2.tif"}
    assert meta["atb_band_numbers"] == {"water_vapour": 1, "aot": 2}
    assert set(meta["mask_files"]) == {"CLM", "MG2", "SAT", "EDG", "IAB"}
    assert meta["mask_files"]["MG2"]["R2"] == f"MASKS/{name}_MG2_R2.tif"
    assert meta["group_geopositioning"]["R1"] == {"ulx": 300000.0, "uly": 4900020.0, "xdim": 10.0,
                                                 "ydim": -10.0, "nrows": 40, "ncols": 50}
    assert meta["crs"] == "EPSG:32631"
    assert meta["valid"] is True
    topo = [m for m in meta["masks"] if m["nature"] == "Topography_Shadow"]
    assert [m["bit"] for m in topo] == [5, 5]


def test_read_real_theia_mtd(shared_data):
    meta = read_mtd(shared_data / THEIA)
    assert meta["product_id"] == "SENTINEL2A_20170203-071245-541_L2A_T38KPD_D_V1-4"
    assert meta["identifier"] == "SENTINEL2A_20170203-071245-541_L2A_T38KPD_D"
    assert meta["platform"] == "SENTINEL2A"
    assert meta["acquired"] == datetime(2017, 2, 3, 7, 12, 45, 541000, tzinfo=timezone.utc)
    assert meta["tile"] == "T38KPD" and meta["zone_type"] == "Tile"
    assert meta["orbit"] == 8454
    assert meta["product_version"] == "1.4"
    assert meta["cloud_percent"] == 24.0 and meta["snow_percent"] == 0.0
    assert meta["quality"]["SunGlintDetected"] is True and meta["quality"]["RainDetected"] is False
    assert meta["quantification"] == {"reflectance": 10000.0, "water_vapour": 20.0, "aot": 200.0}
    assert meta["nodata"] == {"reflectance": -10000.0, "water_vapour": 0.0, "aot": 0.0}
    assert meta["bands"] == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    assert meta["groups"]["R2"] == ["B5", "B6", "B7", "B8A", "B11", "B12"]
    assert meta["images"]["SRE"]["B11"] == "SENTINEL2A_20170203-071245-541_L2A_T38KPD_D_V1-4_SRE_B11.tif"
    assert len(meta["images"]["FRE"]) == 10
    assert meta["images"]["ATB"]["R2"] == "SENTINEL2A_20170203-071245-541_L2A_T38KPD_D_V1-4_ATB_R2.tif"
    assert meta["quicklook"] == "SENTINEL2A_20170203-071245-541_L2A_T38KPD_D_V1-4_QKL_ALL.jpg"  # "./" removed
    assert meta["mask_files"]["CLM"]["R1"] == \
        "MASKS/SENTINEL2A_20170203-071245-541_L2A_T38KPD_D_V1-4_CLM_R1.tif"
    assert set(meta["mask_files"]) == {"CLM", "MG2", "SAT", "EDG", "IAO"}
    assert meta["epsg"] == 32738 and meta["crs"] == "EPSG:32738"
    assert meta["group_geopositioning"]["R1"] == {"ulx": 600000.0, "uly": 7900000.0, "xdim": 10.0,
                                                 "ydim": -10.0, "nrows": 10980, "ncols": 10980}
    assert meta["group_geopositioning"]["R2"]["nrows"] == 5490
    assert meta["sun_angles"]["zenith"] == pytest.approx(26.9929467990548)
    assert meta["view_angles"]["B8A"]["azimuth"] == pytest.approx(286.346481189483)
    assert meta["valid"] is True


def test_read_mtd_errors(tmp_path):
    with pytest.raises(MissingFileError, match="no such file"):
        read_mtd(tmp_path / "nope")
    with pytest.raises(MissingFileError, match="MTD_ALL"):
        read_mtd(tmp_path)
    bad = tmp_path / "X_MTD_ALL.xml"
    bad.write_text("<Muscate_Metadata_Document><Product_Characteristics>")
    with pytest.raises(CorruptFileError, match="not well-formed"):
        read_mtd(bad)
    bad.write_text("<Earth_Explorer_Header/>")
    with pytest.raises(CorruptFileError, match="Muscate_Metadata_Document"):
        read_mtd(bad)
    bad.write_text("<Muscate_Metadata_Document><Product_Characteristics><PRODUCT_ID>x</PRODUCT_ID>"
                   "</Product_Characteristics></Muscate_Metadata_Document>")
    with pytest.raises(CorruptFileError, match="PLATFORM"):
        read_mtd(tmp_path)

"""Reading MUSCATE L2A products as L3A/snow inputs: file inventory, angle grids (real Theia MTD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpumaja.errors import InputError, MissingFileError
from gpumaja.io.l2a_inputs import expand_l2a_inputs, group_files
from gpumaja.io.muscate_angles import read_muscate_angles
from gpumaja.io.muscate_mtd import read_mtd
from gpumaja.model.grids import Grid

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "theia_l2a_metadata"
THEIA = REAL / "SENTINEL2A_20170203-071245-541_L2A_T38KPD_C_V1-0"
PREFIX = "SENTINEL2A_20170203-071245-541_L2A_T38KPD_D_V1-4"  # the file names inside (V1-4, D)
needs_real = pytest.mark.skipif(not THEIA.is_dir(), reason="../shared/data is absent")


@needs_real
def test_real_theia_product_r1_inventory_for_wasp():
    meta = read_mtd(THEIA)
    files = group_files(meta, "R1", ["B2", "B3", "B4", "B8"])
    # expected names read by eye from the MTD_ALL.xml (Image nature Flat_Reflectance, Mask_List)
    assert files["image"] == "FRE"
    assert files["bands"]["B2"] == f"{PREFIX}_FRE_B2.tif"
    assert files["bands"]["B8"] == f"{PREFIX}_FRE_B8.tif"
    assert files["CLM"] == f"MASKS/{PREFIX}_CLM_R1.tif"
    assert files["MG2"] == f"MASKS/{PREFIX}_MG2_R1.tif"
    assert files["EDG"] == f"MASKS/{PREFIX}_EDG_R1.tif"
    assert files["ATB"] == f"{PREFIX}_ATB_R1.tif"
    assert files["aot_band"] == 2  # ATB band 2 = AOT (MAJA format; the XML gives no band_number)
    assert meta["quantification"]["aot"] == 200.0 and meta["quantification"]["reflectance"] == 10000.0
    assert meta["nodata"]["reflectance"] == -10000.0 and meta["nodata"]["aot"] == 0.0


@needs_real
def test_real_theia_product_r2_inventory_and_identity():
    meta = read_mtd(THEIA)
    files = group_files(meta, "R2", ["B5", "B6", "B7", "B8A", "B11", "B12"])
    assert files["bands"]["B11"] == f"{PREFIX}_FRE_B11.tif"
    assert files["CLM"] == f"MASKS/{PREFIX}_CLM_R2.tif"
    assert files["ATB"] == f"{PREFIX}_ATB_R2.tif"
    assert meta["platform"] == "SENTINEL2A"
    assert meta["tile"] == "T38KPD"
    assert meta["acquired"].isoformat().startswith("2017-02-03T07:12:45.541")


@needs_real
def test_real_theia_angles():
    meta = read_mtd(THEIA)
    grid = Grid.from_origin("EPSG:32738", 600000.0, 7900000.0, 10.0, 10980, 10980)
    sun, views = read_muscate_angles(meta["path"], meta, grid)
    assert sun.zenith.shape == (23, 23)
    assert sun.zenith[0, 0] == pytest.approx(27.5031, abs=1e-4)  # first <VALUES> of Sun_Angles_Grids
    assert sun.mean_zenith == pytest.approx(26.9929467990548)
    # first sample on the tile's upper-left corner: cell centre of the angle grid at (600000, 7900000)
    assert sun.grid.transform.c == pytest.approx(600000.0 - 2500.0)
    assert sun.grid.transform.f == pytest.approx(7900000.0 + 2500.0)
    assert {"B2", "B8A", "B12"} <= set(views)
    assert views["B2"].mean_zenith == pytest.approx(6.34279501659039)
    # band B1, detector 07 is the only one seeing row 0 col 0 (1.89702); detector 08 sees col 3 (2.94917)
    assert views["B1"].zenith[0, 0] == pytest.approx(1.89702, abs=1e-5)
    assert views["B1"].zenith[0, 3] == pytest.approx(2.94917, abs=1e-5)
    assert np.isfinite(views["B2"].zenith).all()


def test_missing_fre_band_is_an_input_error(tmp_path):
    meta = {"path": tmp_path / "X_MTD_ALL.xml", "groups": {"R1": ["B2"]}, "images": {"FRE": {}, "SRE": {}, "ATB": {}},
            "mask_files": {}, "atb_band_numbers": {"aot": 2}}
    with pytest.raises(InputError, match="no FRE file listed for band B2"):
        group_files(meta, "R1", ["B2"])
    meta["images"]["FRE"] = {"B2": "X_FRE_B2.tif"}
    with pytest.raises(InputError, match="no CLM mask file listed for group R1"):
        group_files(meta, "R1", ["B2"])


def test_expand_inputs_errors(tmp_path):
    with pytest.raises(MissingFileError):
        expand_l2a_inputs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="no MUSCATE product"):
        expand_l2a_inputs([tmp_path / "empty"])


def _angles_xml(det_a: str, det_b: str) -> str:
    def grid(values: str) -> str:
        rows = "".join(f"<VALUES>{r}</VALUES>" for r in values.split("|"))
        return (f"<Zenith><COL_STEP>5000</COL_STEP><ROW_STEP>5000</ROW_STEP><Values_List>{rows}</Values_List></Zenith>"
                f"<Azimuth><COL_STEP>5000</COL_STEP><ROW_STEP>5000</ROW_STEP><Values_List>{rows}</Values_List></Azimuth>")
    return ("<Muscate_Metadata_Document><Angles_Grids_List><Sun_Angles_Grids>" + grid("30 30|30 30") +
            "</Sun_Angles_Grids><Viewing_Incidence_Angles_Grids_List>"
            "<Band_Viewing_Incidence_Angles_Grids_List band_id=\"B2\">"
            f"<Viewing_Incidence_Angles_Grids detector_id=\"01\">{grid(det_a)}</Viewing_Incidence_Angles_Grids>"
            f"<Viewing_Incidence_Angles_Grids detector_id=\"02\">{grid(det_b)}</Viewing_Incidence_Angles_Grids>"
            "</Band_Viewing_Incidence_Angles_Grids_List></Viewing_Incidence_Angles_Grids_List>"
            "</Angles_Grids_List></Muscate_Metadata_Document>")


def test_detectors_merge_last_non_nan_wins(tmp_path):
    mtd = tmp_path / "X_MTD_ALL.xml"
    mtd.write_text(_angles_xml("1 2|3 NaN", "NaN 7|NaN 8"))
    meta = {"path": mtd, "bands": ["B2"], "sun_angles": None, "view_angles": {}}
    grid = Grid.from_origin("EPSG:32631", 0.0, 10000.0, 10.0, 1000, 1000)
    _, views = read_muscate_angles(mtd, meta, grid)
    # WASP ViewingAngles.cpp: the later detector overwrites where it has a value
    np.testing.assert_allclose(views["B2"].zenith, [[1, 7], [3, 8]])

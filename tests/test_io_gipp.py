"""MAJA GIPP reader on the shared S2A/S2B GIPP set (maja-l2a.md §3.1, §3.3, §3.4, §4) and on broken copies."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.earth_explorer import parse_gipp_name
from gpumaja.io.gipp import (
    find_gipp,
    l2params_from_l2comm,
    load_gipp_lut,
    read_gipp_tables,
    read_l2comm,
    read_lut,
)
from gpumaja.model.params import L2Params

S2A_TOCR = "S2A_TEST_GIP_L2TOCR_L_CONTINEN_10005_20150703_21000101"
S2A_L2COMM = "S2A_TEST_GIP_L2COMM_L_ALLSITES_10008_20150703_21000101.EEF"
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
S2A_NM = (443, 490, 560, 665, 705, 740, 780, 840, 865, 940, 1380, 1600, 2200)


def _raw(gipp_dir: Path, folder_glob: str, suffix: str, shape) -> np.ndarray:
    """One raw LUT file read independently of the reader: little-endian float32, C order (§4)."""
    (path,) = [p for p in gipp_dir.glob(folder_glob + "/*") if p.name.endswith(suffix)]
    return np.fromfile(path, dtype="<f4").reshape(shape)


@pytest.fixture(scope="module")
def s2a(gipp_dir):
    return read_gipp_tables(gipp_dir, "S2A")


# ------------------------------------------------------------------------------------------ names
def test_parse_gipp_name():
    n = parse_gipp_name(S2A_TOCR + ".HDR")
    assert (n.mission, n.file_class, n.file_type, n.applicability, n.nickname, n.version, n.ext) == (
        "S2A", "TEST", "L2TOCR", "L", "CONTINEN", "10005", ".HDR")
    n = parse_gipp_name("S2__TEST_GIP_L2SITE_S_31TJF____10001_00000000_99999999.EEF")
    assert (n.mission, n.file_type, n.nickname, n.start, n.stop) == ("S2", "L2SITE", "31TJF", "00000000", "99999999")
    assert parse_gipp_name(S2A_TOCR + ".DBL.DIR").ext == ".DBL.DIR"
    assert parse_gipp_name("lut_940_S2A.dat") is None


# ------------------------------------------------------------------------------------------ find_gipp
def test_find_gipp_s2a(gipp_dir):
    found = find_gipp(gipp_dir, "S2A")
    assert set(found) == {"L2TOCR", "L2DIRT", "L2DIFT", "L2ALBD", "L2WATV", "L2SMAC", "L2COMM", "L2SITE"}
    assert found["L2TOCR"].name == S2A_TOCR + ".HDR"
    assert found["L2COMM"].name == S2A_L2COMM
    assert found["L2SITE"].name.startswith("S2__")
    assert all(p.name.startswith("S2A_") for t, p in found.items() if t != "L2SITE")


def test_find_gipp_s2b(gipp_dir):
    found = find_gipp(gipp_dir, "S2B")
    assert found["L2TOCR"].name.startswith("S2B_TEST_GIP_L2TOCR_L_CONTINEN_10002")


@pytest.mark.parametrize("platform", ["L8", "S2C", "L9"])
def test_other_sensor_is_a_clear_input_error(gipp_dir, platform):
    with pytest.raises(InputError, match=rf"no MAJA GIPP for platform {platform}.*S2A, S2B"):
        find_gipp(gipp_dir, platform)
    with pytest.raises(InputError, match="another sensor"):
        read_gipp_tables(gipp_dir, platform)


def test_unknown_platform_and_missing_folder(gipp_dir, tmp_path):
    with pytest.raises(InputError, match="unknown platform"):
        find_gipp(gipp_dir, "S3A")
    with pytest.raises(MissingFileError, match="GIPP folder not found"):
        find_gipp(tmp_path / "nowhere", "S2A")


def test_unknown_model_names_the_models_present(gipp_dir):
    with pytest.raises(MissingFileError, match=r"lacks L2TOCR.*DUST.*CONTINEN"):
        find_gipp(gipp_dir, "S2A", model="DUST")


def _link_copy(gipp_dir: Path, dst: Path, skip=()) -> Path:
    """A folder of symbolic links to every shared GIPP file except those in `skip`."""
    dst.mkdir()
    for p in gipp_dir.iterdir():
        if p.name not in skip:
            (dst / p.name).symlink_to(p)
    return dst


def test_duplicate_type_names_both_files(gipp_dir, tmp_path):
    folder = _link_copy(gipp_dir, tmp_path / "gipp")
    watv = "S2A_TEST_GIP_L2WATV_L_CONTINEN_10005_20150703_21000101.HDR"
    other = "S2A_TEST_GIP_L2WATV_L_CONTINEN_10006_20150703_21000101.HDR"
    shutil.copy(gipp_dir / watv, folder / other)
    with pytest.raises(InputError, match=rf"two L2WATV GIPPs for S2A: .*{watv}.*{other}|{other}.*{watv}"):
        find_gipp(folder, "S2A")


def test_missing_type_is_a_missing_file_error(gipp_dir, tmp_path):
    folder = _link_copy(gipp_dir, tmp_path / "gipp", skip={S2A_L2COMM})
    with pytest.raises(MissingFileError, match="lacks L2COMM"):
        find_gipp(folder, "S2A")


def test_truncated_raw_file_is_corrupt(gipp_dir, tmp_path):
    name = "lut_inv_CS_V51_S2A_zerodeux_newS2Abands_bande_865"
    dbl = S2A_TOCR + ".DBL.DIR"
    folder = _link_copy(gipp_dir, tmp_path / "gipp", skip={dbl})
    (folder / dbl).mkdir()
    for p in (gipp_dir / dbl).iterdir():
        (folder / dbl / p.name).symlink_to(p)
    (folder / dbl / name).unlink()
    data = (gipp_dir / dbl / name).read_bytes()
    (folder / dbl / name).write_bytes(data[:-1000])
    expected = 11 * 4 * 7 * 4 * 25 * 20 * 4
    assert len(data) == expected == 2_464_000
    msg = rf"{name}: LUT file has {expected - 1000} bytes; expected {expected}"
    with pytest.raises(CorruptFileError, match=msg):
        read_lut(folder / (S2A_TOCR + ".HDR"))
    with pytest.raises(CorruptFileError, match=msg):
        read_gipp_tables(folder, "S2A")


def test_truncated_copy_with_only_its_header(gipp_dir, tmp_path):
    """The HDR of the folder plus a truncated copy of one DBL.DIR file, nothing else."""
    dbl = S2A_TOCR + ".DBL.DIR"
    shutil.copy(gipp_dir / (S2A_TOCR + ".HDR"), tmp_path)
    (tmp_path / dbl).mkdir()
    for p in (gipp_dir / dbl).iterdir():
        (tmp_path / dbl / p.name).write_bytes(p.read_bytes()[: 2_464_000 if "443" not in p.name else 400])
    with pytest.raises(CorruptFileError, match=r"bande_443: LUT file has 400 bytes; expected 2464000"):
        read_lut(tmp_path / (S2A_TOCR + ".HDR"))


def test_missing_raw_file(gipp_dir, tmp_path):
    shutil.copy(gipp_dir / (S2A_TOCR + ".HDR"), tmp_path)
    with pytest.raises(MissingFileError, match="bande_443: LUT file listed in"):
        read_lut(tmp_path / (S2A_TOCR + ".HDR"))


# ------------------------------------------------------------------------------------------ tables
def test_tables_layout(s2a, gipp_dir):
    assert s2a.platform == "S2A" and s2a.model == "CONTINEN"
    assert s2a.source == f"MAJA GIPP S2A CONTINEN 10005 ({gipp_dir})"
    assert s2a.bands == S2_BANDS
    assert s2a.wavelengths_nm == tuple(float(w) for w in S2A_NM)
    assert s2a.toc.shape == (13, 11, 4, 7, 4, 25, 20)
    assert s2a.dirt.shape == s2a.dift.shape == (13, 11, 4, 25)
    assert s2a.albd.shape == (13, 4, 25)
    assert s2a.watv.shape == (11, 4, 101)
    assert s2a.smac.shape == (13, 49)
    for a in (s2a.toc, s2a.dirt, s2a.dift, s2a.albd, s2a.watv, s2a.smac, *s2a.toc_axes):
        assert a.dtype == np.float32 and not a.flags.writeable
    ts, tv, dphi, alt, aot, toa = s2a.toc_axes
    np.testing.assert_array_equal(ts, np.arange(11) * 7.5)
    np.testing.assert_array_equal(tv, [0, 7, 13, 20])
    np.testing.assert_array_equal(dphi, np.arange(7) * 30.0)
    np.testing.assert_array_equal(alt, [0, 1000, 2000, 3000])  # metres, as in the file
    np.testing.assert_array_equal(aot, np.arange(25) * 0.0625)
    np.testing.assert_allclose(toa, -0.2 + 0.07 * np.arange(20), atol=1e-6)
    np.testing.assert_array_equal(s2a.dirt_axes[0], ts)
    np.testing.assert_array_equal(s2a.watv_axes[0], np.arange(11) * 7.0)
    np.testing.assert_allclose(s2a.watv_axes[2], 0.01 * np.arange(1, 102), atol=1e-6)


def test_tables_equal_the_raw_files(s2a, gipp_dir):
    for k, nm in enumerate(S2A_NM):
        raw = _raw(gipp_dir, "S2A_TEST_GIP_L2TOCR_*.DBL.DIR", f"_bande_{nm}", (11, 4, 7, 4, 25, 20))
        assert np.array_equal(s2a.toc[k], raw), nm
        raw = _raw(gipp_dir, "S2A_TEST_GIP_L2DIFT_*.DBL.DIR", f"_bande_{nm}", (11, 4, 25))
        assert np.array_equal(s2a.dift[k], raw), nm
    raw = _raw(gipp_dir, "S2A_TEST_GIP_L2WATV_*.DBL.DIR", "lut_940_S2A.dat", (11, 4, 101))
    assert np.array_equal(s2a.watv, raw)


def test_physics_checks_of_the_reference(s2a):
    """maja-l2a.md §4 'Sanity checks' (443 nm and 865 nm, CONTINEN)."""
    b443, b865 = s2a.bands.index("B01"), s2a.bands.index("B8A")
    assert s2a.dirt[b443, 0, 0, 0] == pytest.approx(0.7906, abs=1e-4)
    assert s2a.dirt[b443, 0, 0, 0] == pytest.approx(np.exp(-0.2358), abs=1e-3)  # Rayleigh depth
    assert s2a.dirt[b443, 0, 3, 0] == pytest.approx(0.8505, abs=1e-4)
    assert s2a.albd[b443, 0, 0] == pytest.approx(0.1765, abs=1e-4)
    toc = s2a.toc[b443]
    assert np.array_equal(toc[:, 0], np.broadcast_to(toc[:, 0, :1], toc[:, 0].shape))  # θv = 0: Δφ-free
    assert np.array_equal(toc[0], np.broadcast_to(toc[0][:, :1], toc[0].shape))  # θs = 0: Δφ-free
    assert toc[0, 0, 0, 0, 0, 3] == pytest.approx(-0.1016, abs=1e-4)  # ρ* = 0.01
    assert toc[0, 0, 0, 0, 0, 7] == pytest.approx(0.239, abs=1e-3)  # ρ* = 0.29
    assert s2a.toc[b865, 0, 0, 0, 0, 0, 3] == pytest.approx(0.0043, abs=1e-4)
    assert s2a.toc[b865, 0, 0, 0, 0, 8, 3] == pytest.approx(-0.053, abs=1e-3)  # τ = 0.5
    w = s2a.watv
    assert np.all(np.diff(w, axis=-1) < 0)
    assert w[0, 0, 0] == pytest.approx(25.7, abs=0.05)
    assert w[0, 0, 10] == pytest.approx(5.9, abs=0.05)
    assert w[0, 0, 100] == pytest.approx(-0.10, abs=0.005)


def test_smac_values(s2a, gipp_dir):
    """Coefficient-major file: a_h2o(B10) = -3.0, a_h2o(B09) = -0.677, τ_Rayleigh (row 27) = 0.2373 at 443 nm."""
    smac = s2a.smac
    assert smac[s2a.bands.index("B10"), 0] == pytest.approx(-3.0, abs=1e-3)
    assert smac[s2a.bands.index("B09"), 0] == pytest.approx(-0.677, abs=1e-3)
    assert smac[s2a.bands.index("B01"), 27] == pytest.approx(0.2373, abs=1e-6)
    # independently: numbers 351..363 (0-based) of the file's <SMAC_Coefficients> are τ_Rayleigh of the 13 bands
    text = (gipp_dir / "S2A_TEST_GIP_L2SMAC_L_ALLSITES_10005_20150703_21000101.EEF").read_text()
    numbers = np.array(re.search(r"<SMAC_Coefficients>(.*?)<", text, re.DOTALL).group(1).split(), dtype=np.float64)
    assert numbers.size == 637
    np.testing.assert_array_equal(smac[:, 27], numbers[27 * 13:28 * 13].astype(np.float32))
    np.testing.assert_array_equal(smac, numbers.reshape(49, 13).T.astype(np.float32))


def test_s2b_set_loads(gipp_dir):
    t = read_gipp_tables(gipp_dir, "S2B")
    assert t.platform == "S2B" and t.bands == S2_BANDS
    assert t.source.startswith("MAJA GIPP S2B CONTINEN 10002")
    raw = _raw(gipp_dir, "S2B_TEST_GIP_L2TOCR_*.DBL.DIR", "_bande_1600", (11, 4, 7, 4, 25, 20))
    assert np.array_equal(t.toc[t.bands.index("B11")], raw)
    lut = load_gipp_lut(gipp_dir, "S2B")
    assert lut.sensor == "S2B" and lut.bands == S2_BANDS


# ------------------------------------------------------------------------------------------ L2COMM
def test_read_l2comm_values(gipp_dir):
    """The 2018 validation set (P18t, maja-l2a.md §1, §3): values read by eye in the file."""
    v = read_l2comm(gipp_dir / S2A_L2COMM)
    expected = {
        "cloud_blue_reflectance_threshold": 0.8, "ndsi_threshold": 1.0, "cirrus_mask_threshold_offset": 0.072,
        "cirrus_mask_threshold_gain": 0.00001, "se_cloud_radius": 1, "step_aot": 3, "n_pix_min": 19,
        "w_dark": 10.0, "default_aot": 0.2, "env_corr_radius": 10, "rayleigh_correction_default_aot": 0.05,
        "ms_slope": 0.55, "ms_y_intercept": 0.005, "water_vapor_max": 8.0, "saturation_threshold": 0.588,
        "water_vapor_reflectance_threshold_wv": 0.2, "water_vapor_reflectance_threshold_ref": 0.1,
        "snow_red_reflectance_threshold": 0.19, "water_reflectance_threshold": 0.08, "max_cloud_percentage": 80.0,
        "aot_initial": 0.2, "w_bounds": 1e9, "lm_max_iterations": 500, "min_percent_mask_cirrus": 10.0,
        "reflectance_nodata": -10000, "aot_init_window_radius": 2, "aot_max_window_radius": 16,
        "water_vapor_quantification": 0.1, "ndvi_aot_threshold": 0.0, "red_toa_threshold": 0.0,
        "blue_band": "B01", "nir_band": "B08", "swir2_band": "B12", "wv_band": "B09", "wv_reference_band": "B8A",
        "cirrus_band": "B10", "dark_band": "B01",
    }
    for key, value in expected.items():
        assert v[key] == value, key
        assert type(v[key]) is type(value), key
    assert "min_threshold_var_blue" not in v  # no L2Params field: skipped


def test_l2params_from_l2comm_and_l2site(gipp_dir):
    base = L2Params(coarse_resolution_m=120.0)
    p = l2params_from_l2comm(gipp_dir / S2A_L2COMM, base)
    assert p.coarse_resolution_m == 120.0  # not in the file: kept from base
    assert p.cloud_blue_reflectance_threshold == 0.8 and p.nir_band == "B08"
    site = read_l2comm(gipp_dir / "S2__TEST_GIP_L2SITE_S_31TJF____10001_00000000_99999999.EEF")
    assert site == {"dark_pixel_threshold": 0.025, "darkest_pixel_surface_reflectance": 0.01}


def test_read_l2comm_refuses_other_gipp_types_and_bad_values(gipp_dir, tmp_path):
    with pytest.raises(InputError, match="File_Type is GIP_L2SMAC"):
        read_l2comm(gipp_dir / "S2A_TEST_GIP_L2SMAC_L_ALLSITES_10005_20150703_21000101.EEF")
    text = (gipp_dir / S2A_L2COMM).read_text()
    bad = tmp_path / S2A_L2COMM
    bad.write_text(text.replace("<Step_AOT>3</Step_AOT>", "<Step_AOT>3.5</Step_AOT>"))
    with pytest.raises(CorruptFileError, match=r"<Step_AOT> holds '3.5'; expected a int for step_aot"):
        read_l2comm(bad)
    bad.write_text(text.replace("<Blue_Band_Code>B1</Blue_Band_Code>", "<Blue_Band_Code>B14</Blue_Band_Code>"))
    with pytest.raises(CorruptFileError, match="Blue_Band_Code.*not a S2 band"):
        read_l2comm(bad)

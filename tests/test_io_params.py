"""read_params: TOML overrides (top level or [l2]), MAJA L2COMM .EEF dispatch, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.params import read_params
from gpumaja.model.params import L2Params


def _write(tmp_path: Path, text: str, name: str = "params.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_top_level_overrides(tmp_path):
    p = read_params(_write(tmp_path, 'cloud_blue_reflectance_threshold = 0.2\nenv_corr_radius = 5\nnir_band = "B08"\n'))
    assert p.cloud_blue_reflectance_threshold == 0.2
    assert p.env_corr_radius == 5 and isinstance(p.env_corr_radius, int)
    assert p.nir_band == "B08"
    assert p.ndsi_threshold == L2Params().ndsi_threshold  # untouched


def test_l2_table_and_int_for_float(tmp_path):
    p = read_params(_write(tmp_path, "[l2]\ndefault_aot = 1\nstep_aot = 4\n"))
    assert p.default_aot == 1.0 and isinstance(p.default_aot, float)
    assert p.step_aot == 4


def test_base_is_kept(tmp_path):
    base = L2Params(coarse_resolution_m=120.0)
    p = read_params(_write(tmp_path, "w_dark = 3.5\n"), base)
    assert p.coarse_resolution_m == 120.0 and p.w_dark == 3.5


def test_empty_file_gives_the_defaults(tmp_path):
    assert read_params(_write(tmp_path, "")) == L2Params()


def test_unknown_keys_name_the_file_and_keys(tmp_path):
    path = _write(tmp_path, "[l2]\nyy_unknown = 0.03\nzz_unknown = 1\nndsi_threshold = 0.3\n")
    with pytest.raises(InputError, match=r"params\.toml: unknown L2 parameter\(s\): yy_unknown, zz_unknown"):
        read_params(path)


def test_keys_outside_the_l2_table(tmp_path):
    with pytest.raises(InputError, match=r"keys outside the \[l2\] table: step_aot"):
        read_params(_write(tmp_path, "step_aot = 2\n[l2]\nndsi_threshold = 0.3\n"))


@pytest.mark.parametrize(
    "line, problem",
    [
        ('step_aot = 2.5', r"step_aot = 2\.5 \(expected an integer\)"),
        ('step_aot = true', r"step_aot = True \(expected an integer\)"),
        ('default_aot = "0.2"', r"default_aot = '0\.2' \(expected a number\)"),
        ('default_aot = false', r"default_aot = False \(expected a number\)"),
        ('blue_band = 1', r"blue_band = 1 \(expected a string\)"),
    ],
)
def test_wrong_types(tmp_path, line, problem):
    with pytest.raises(InputError, match=r"params\.toml: wrong type for L2 parameter\(s\): " + problem):
        read_params(_write(tmp_path, line + "\n"))


def test_invalid_toml_and_missing_file_and_suffix(tmp_path):
    with pytest.raises(CorruptFileError, match="not valid TOML"):
        read_params(_write(tmp_path, "step_aot = = 3\n"))
    with pytest.raises(MissingFileError):
        read_params(tmp_path / "absent.toml")
    with pytest.raises(InputError, match=r"unknown parameter file type '\.yaml'"):
        read_params(_write(tmp_path, "a: 1\n", "params.yaml"))


def test_eef_dispatch(gipp_dir):
    p = read_params(gipp_dir / "S2A_TEST_GIP_L2COMM_L_ALLSITES_10008_20150703_21000101.EEF")
    assert p.cloud_blue_reflectance_threshold == 0.8  # P18t validation value, maja-l2a.md §1
    assert p.ndsi_threshold == 1.0 and p.default_aot == 0.2 and p.nir_band == "B08"
    site = read_params(gipp_dir / "S2__TEST_GIP_L2SITE_S_31TJF____10001_00000000_99999999.EEF", p)
    assert site.dark_pixel_threshold == 0.025 and site.cloud_blue_reflectance_threshold == 0.8


def test_a_value_outside_its_set_names_the_file(tmp_path):
    path = _write(tmp_path, '[l2]\nfine_shadow_darkening = "toa"\n')
    with pytest.raises(InputError, match="fine_shadow_darkening") as e:
        read_params(path)
    assert e.value.path == path and str(e.value).startswith(f"{path}: L2 parameter fine_shadow_darkening")

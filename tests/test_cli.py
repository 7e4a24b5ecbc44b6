"""The command line, end to end, through `gpumaja.cli.main.run` (exit codes, stdout JSON, stderr)."""

import json
import shutil
from pathlib import Path

import pytest

from gpumaja.cli.main import run
from tests.conftest import gpu_available


def call(capsys, *args):
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_and_version(capsys):
    code, out, _ = call(capsys, "--help")
    assert code == 0 and "info" in out and "synth" in out and "demo" in out
    code, out, _ = call(capsys, "--version")
    assert code == 0 and out.startswith("gpumaja ")


def test_info_real_safes_json(capsys, s2_safe_dir):
    # Values below were read by eye from the products' MTD_MSIL1C.xml / MTD_TL.xml.
    code, out, _ = call(capsys, "info", *map(str, sorted(s2_safe_dir.iterdir())), "--json", "--device", "cpu")
    assert code == 0
    result = json.loads(out)
    products = result["products"]
    assert [p["tile"] for p in products] == ["T31TCJ", "T31TCJ"]
    assert [p["platform"] for p in products] == ["SENTINEL-2A", "SENTINEL-2B"]
    assert [p["acquired"][:10] for p in products] == ["2024-01-20", "2024-03-05"]
    assert abs(products[0]["mean_sun_zenith"] - 65.7554034542734) < 0.01
    assert abs(products[1]["mean_sun_zenith"] - 51.816936554549) < 0.01
    assert products[0]["grids"]["R1"]["width"] == 30 and products[0]["grids"]["R2"]["width"] == 15
    assert all(v == 0.0 for p in products for v in p["nodata_percent"].values())
    assert result["series"]["one_series"] and result["series"]["tile"] == "T31TCJ"


def test_info_series_folder_in_any_order(capsys, s2_safe_dir):
    code, out, _ = call(capsys, "info", str(s2_safe_dir), "--json", "--no-pixels")
    assert code == 0
    dates = [p["acquired"] for p in json.loads(out)["products"]]
    assert dates == sorted(dates) and len(dates) == 2


def test_info_landsat_crop(capsys, landsat_crop_dir):
    # DATE_ACQUIRED = 2015-08-04, SUN_ELEVATION = 64.74360932 in the MTL.txt
    code, out, _ = call(capsys, "info", str(landsat_crop_dir), "--json", "--device", "cpu")
    assert code == 0
    p = json.loads(out)["products"][0]
    assert p["acquired"].startswith("2015-08-04T16:19:21")
    assert abs(p["mean_sun_elevation"] - 64.74360932) < 1e-6
    assert p["platform"] == "LANDSAT_8"
    code, out, _ = call(capsys, "info", str(landsat_crop_dir))
    assert code == 0 and "2015-08-04" in out and "64.744" in out


def test_bad_inputs_exit_2_and_name_the_file(capsys, tmp_path, s2_safe_dir):
    code, _, err = call(capsys, "info", str(tmp_path / "nothing.SAFE"))
    assert code == 2 and "nothing.SAFE" in err
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "readme.txt").write_text("hello")
    code, _, err = call(capsys, "info", str(junk / "readme.txt"))
    assert code == 2 and "readme.txt" in err and "Traceback" not in err
    safe = shutil.copytree(next(s2_safe_dir.glob("S2A*.SAFE")), tmp_path / next(s2_safe_dir.glob("S2A*.SAFE")).name)
    (safe / "MTD_MSIL1C.xml").write_text("<garbled")
    code, _, err = call(capsys, "info", str(safe))
    assert code == 2 and "MTD_MSIL1C.xml" in err


def test_bad_usage_exits_2(capsys):
    code, _, _ = call(capsys, "info")
    assert code == 2
    code, _, _ = call(capsys, "demo", "--device", "tpu")
    assert code == 2


@pytest.mark.skipif(gpu_available(), reason="needs a machine without a usable GPU")
def test_device_gpu_without_gpu_exits_2(capsys, s2_safe_dir):
    code, _, err = call(capsys, "info", str(s2_safe_dir), "--device", "gpu")
    assert code == 2 and "--device gpu" in err


@pytest.mark.slow
def test_synth_then_demo_small(capsys, tmp_path):
    code, out, _ = call(capsys, "synth", "--out", str(tmp_path / "s"), "--dates", "2", "--size", "120",
                        "--seed", "3", "--json")
    assert code == 0
    written = json.loads(out)["products"]
    assert len(written) == 2 and all(Path(p).is_dir() for p in written)
    code, out, _ = call(capsys, "info", str(tmp_path / "s"), "--json", "--device", "cpu")
    assert code == 0 and json.loads(out)["series"]["one_series"]

    code, out, err = call(capsys, "-q", "demo", "--out", str(tmp_path / "d"), "--dates", "3", "--size", "120",
                          "--device", "cpu", "--json")
    assert code == 0, err
    result = json.loads(out)
    # synth -> l2a: one MUSCATE product per date, each compared with the truth of its date
    assert len(result["products"]) == 3
    # -> l3a at the middle date -> one snow map per valid date -> SCD over the series' period
    n_valid = sum(p["valid"] for p in result["products"])
    assert Path(result["l3a"]["product"]).is_dir() and Path(result["l3a"]["quicklook"]).is_file()
    assert len(result["l3a"]["inputs"]) == n_valid
    assert len(result["snow"]) == n_valid and all(Path(s["product"]).is_dir() for s in result["snow"])
    assert Path(result["scd"]["map"]).is_file() and result["scd"]["n_inputs"] == n_valid
    assert 0 <= result["scd"]["mean_scd_days"] <= result["scd"]["n_days"]
    for p in result["products"]:
        assert Path(p["product"]).is_dir() and p["cloud_percent_truth"] is not None
        assert 0.0 <= p["cloud_percent"] <= 100.0
        if p["valid"]:
            assert Path(p["quicklook"]).is_file()
            assert 0.0 < p["mean_aot"] <= 1.5 and p["mean_water_vapour"] > 0.0

"""scripts/validate_l3a_snow.py: its metric functions on tiny arrays with hand-computed values, its report
and its --help (the end-to-end run is a validation, not a test)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "validate_l3a_snow.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpumaja_scripts_validate_l3a_snow", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


v = _load()
T, F = True, False


def test_help_runs():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    for opt in ("--size", "--start", "--stop", "--revisit", "--seed", "--workdir", "--reuse", "--device"):
        assert opt in r.stdout


def test_block_aggregation_majority_and_any():
    a = np.array([[1, 1, 0, 0],
                  [1, 0, 0, 1],
                  [0, 0, 1, 1],
                  [0, 0, 1, 1]], float)
    np.testing.assert_array_equal(v.block_mean(a, 2), [[0.75, 0.25], [0.0, 1.0]])
    np.testing.assert_array_equal(v.block_mean(a, 1), a)
    np.testing.assert_array_equal(v.majority(a.astype(bool)), [[T, F], [F, T]])
    half = np.array([[1, 0], [1, 0]], bool)  # exactly half the sub-pixels: snow (>= 0.5)
    assert v.majority(half).item() is True
    np.testing.assert_array_equal(v.any_of(a.astype(bool)), [[T, T], [F, T]])
    cube = np.stack([a, 2 * a])  # leading axes are kept
    np.testing.assert_array_equal(v.block_mean(cube, 2)[1], [[1.5, 0.5], [0.0, 2.0]])


def test_slope_of_planes():
    x = np.arange(8) * 10.0
    dem = np.broadcast_to(x[None, :] * math.tan(math.radians(30)), (6, 8))  # 30 deg towards east
    np.testing.assert_allclose(v.slope_deg(dem, 10.0), 30.0, atol=1e-9)
    flat = np.full((5, 5), 812.0)
    np.testing.assert_array_equal(v.slope_deg(flat, 20.0), 0.0)
    y = np.arange(6)[:, None] * 20.0  # 20 m pixels, 20 m rise per pixel: 45 deg
    np.testing.assert_allclose(v.slope_deg(np.broadcast_to(y, (6, 4)), 20.0), 45.0, atol=1e-9)


def test_error_stats_and_band_errors():
    est = np.array([0.1, 0.2, np.nan, 0.5])
    ref = np.array([0.0, 0.4, 0.1, 0.9])
    valid = np.array([T, T, T, F])
    e = v.error_stats(est, ref, valid)  # errors +0.1, -0.2 (NaN and invalid left out)
    assert e["n"] == 2
    assert e["rmse"] == pytest.approx(math.sqrt((0.01 + 0.04) / 2))
    assert e["bias"] == pytest.approx(-0.05) and e["mean_truth"] == pytest.approx(0.2)
    assert v.error_stats(est, ref, np.zeros(4, bool)) == {"n": 0, "rmse": None, "bias": None, "mean_truth": None}
    frc = np.array([[[0.1, 0.3]], [[0.2, 0.2]]])  # 2 bands, 1 x 2 px
    truth = np.array([[[0.1, 0.1]], [[0.5, 0.1]]])
    got = v.band_errors(frc, truth, ("B02", "B11"), np.array([[T, T]]))
    assert got["B02"]["bias"] == pytest.approx(0.1) and got["B02"]["rmse"] == pytest.approx(math.sqrt(0.02))
    assert got["B11"]["bias"] == pytest.approx(-0.1) and got["B11"]["rmse"] == pytest.approx(math.sqrt(0.05))


def test_flag_shares():
    flag = np.array([[0, 1, 4, 4], [4, 3, 2, 4]], np.uint8)
    assert v.flag_shares(flag) == {"nodata": 12.5, "cloud": 12.5, "snow": 12.5, "water": 12.5, "land": 50.0}


def test_snow_confusion_leaves_out_flagged_and_truly_cloudy_pixels():
    snw = np.array([[100, 0, 205], [255, 100, 0]], np.uint8)
    truth_snow = np.array([[T, T, T], [F, F, F]])
    cloudy = np.array([[F, F, F], [F, F, T]])
    c = v.snow_confusion(snw, truth_snow, cloudy)
    # scored: (0,0) snow/snow tp, (0,1) no-snow/snow fn, (1,1) snow/no-snow fp
    assert c == {"tp": 1, "fp": 1, "fn": 1, "tn": 0}
    s = v.scores(c)
    assert s["n"] == 3 and s["oa"] == pytest.approx(1 / 3)
    assert s["precision"] == s["recall"] == s["f1"] == pytest.approx(0.5)
    assert v.scores({"tp": 0, "fp": 0, "fn": 0, "tn": 4}) == {"tp": 0, "fp": 0, "fn": 0, "tn": 4, "n": 4, "oa": 1.0,
                                                              "precision": None, "recall": None, "f1": None}
    acc = v.add_counts({}, c)
    v.add_counts(acc, {"tp": 2, "fp": 0, "fn": 0, "tn": 5})
    assert acc == {"tp": 3, "fp": 1, "fn": 1, "tn": 5}


def test_partial_snow_share():
    snw = np.array([[100, 100, 100, 0], [100, 205, 100, 100]], np.uint8)
    fs20 = np.array([[0.0, 0.2, 0.9, 0.0], [0.0, 1.0, 0.05, 0.3]])
    valid = np.array([[T, T, T, T], [T, T, T, F]])  # (1,1) is 205: never a detection
    # detected & valid: (0,0) 0.0, (0,1) 0.2, (0,2) 0.9, (1,0) 0.0, (1,2) 0.05 -> 3 of 5 on some snow
    assert v.partial_snow_share(snw, fs20, valid) == pytest.approx(0.6)
    assert v.partial_snow_share(np.zeros((2, 2), np.uint8), np.ones((2, 2)), np.ones((2, 2), bool)) is None


def test_snow_runs_scd_sod_smod():
    series = {
        "a": [1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0],  # 8 days; two longest runs of 3: the first (3..5)
        "b": [0] + [1] * 12 + [0],  # 12 days, one run 1..12
        "c": [1] * 14,  # 14 days, 0..13
        "d": [0, 0] + [1] * 10 + [0, 0],  # exactly 10 days: no SOD/SMOD (SCD must be > 10)
        "e": [0] * 14,
    }
    daily = np.array(list(series.values()), bool).T  # (14 days, 5 px)
    runs = v.SnowRuns((1, 5))
    for day in daily:
        runs.add(day[None, :])
    scd, sod, smod = runs.result(min_days=10)
    np.testing.assert_array_equal(scd[0], [8, 12, 14, 10, 0])
    np.testing.assert_array_equal(sod[0], [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(smod[0], [0, 12, 13, 0, 0])
    scd2, sod2, smod2 = runs.result(min_days=2)
    np.testing.assert_array_equal(sod2[0], [3, 1, 0, 2, 0])
    np.testing.assert_array_equal(smod2[0], [5, 12, 13, 11, 0])
    np.testing.assert_array_equal(scd2, scd)


def test_day_errors():
    est = np.array([10, 20, 5], np.uint16)
    ref = np.array([12, 15, 5], np.int32)
    e = v.day_errors(est, ref, np.array([T, T, F]))  # errors -2, +5 (unsigned input handled)
    assert e["n"] == 2 and e["mae"] == pytest.approx(3.5) and e["bias"] == pytest.approx(1.5)
    assert e["rmse"] == pytest.approx(math.sqrt(14.5))
    assert v.day_errors(est, ref, np.zeros(3, bool))["mae"] is None


def test_calendar_helpers():
    assert v.synthesis_dates(date(2023, 11, 1), date(2024, 5, 31)) == [
        date(2023, 11, 15), date(2023, 12, 15), date(2024, 1, 15), date(2024, 2, 15), date(2024, 3, 15),
        date(2024, 4, 15), date(2024, 5, 15)]
    assert v.synthesis_dates(date(2023, 11, 16), date(2024, 1, 15)) == [date(2023, 12, 15), date(2024, 1, 15)]
    assert v.synthesis_dates(date(2024, 1, 16), date(2024, 2, 14)) == []
    assert v.hydrological_year(date(2023, 11, 1)) == (date(2023, 9, 1), date(2024, 8, 31))
    assert v.hydrological_year(date(2024, 8, 31)) == (date(2023, 9, 1), date(2024, 8, 31))
    assert v.hydrological_year(date(2024, 9, 1)) == (date(2024, 9, 1), date(2025, 8, 31))
    # 1 Nov 2023 .. 31 May 2024 is 212 days: dates on days 0, 5, ..., 210
    assert v.n_dates(date(2023, 11, 1), date(2024, 5, 31), 5) == 43
    assert v.n_dates(date(2024, 1, 1), date(2024, 1, 1), 5) == 1
    with pytest.raises(ValueError):
        v.n_dates(date(2024, 1, 2), date(2024, 1, 1), 5)


def test_report_renders_every_section():
    err = {"n": 4, "rmse": 0.01, "bias": -0.002, "mean_truth": 0.1}
    group = {"flag_percent": {"nodata": 0.0, "cloud": 5.0, "snow": 10.0, "water": 2.0, "land": 83.0}}
    for subset in ("land", "land_snow_free", "land_snow_free_flat"):
        group[subset] = {b: err for b in v.R1_BANDS + v.R2_BANDS}
    scd_err = {"n": 9, "mae": 3.0, "bias": 1.0, "rmse": 4.0}
    res = {
        "config": {"dates": 3, "revisit_days": 5, "start": "2024-01-01", "last_date": "2024-01-11", "size": 60,
                   "seed": 0, "backend": "cpu"},
        "l3a": [{"date": "2024-01-15", "n_inputs": 3, "groups": {"R1": group, "R2": group}},
                {"date": "2024-02-15", "error": "no usable L2A product"}],
        "snow": {"dates": [{"date": "2024-01-01", "sky": "clear", "true_snow_percent": 4.0, "snow_percent": 3.5,
                            "flagged_cloud_percent": 0.0, "true_cloud_percent": 0.0, "oa": 0.99,
                            "precision": 0.9, "recall": 0.8, "f1": 0.85, "detected_on_some_snow": 0.95,
                            "snowline_m": 1200.0, "true_snow_line_m": 1150.2}],
                 "total": {"oa": 0.99, "precision": 0.9, "recall": 0.8, "f1": 0.85, "detected_on_some_snow": 0.95}},
        "scd": {"start": "2023-09-01", "stop": "2024-08-31", "n_inputs": 3, "scd": scd_err, "sod": scd_err,
                "smod": scd_err, "mean_scd": 20.0, "mean_true_scd": 19.0,
                "nobs": {"seen_percent": 100.0, "mean": 2.5, "median": 3, "min": 1, "max": 3}},
        "seconds": {"synth": None, "l2a": 12.3},
    }
    md = v.report(res)
    assert "0.0100 (-0.0020)" in md and "no usable L2A product" in md
    assert "| SCD | 9 | 3.00 | +1.00 | 4.00 |" in md and "| **all** |" in md
    assert "| 2024-01-01 | clear | 4.00 | 3.50 |" in md


def test_size_must_fit_the_l2a_coarse_grid(capsys):
    with pytest.raises(SystemExit) as exc:
        v.main(["--size", "300"])  # 3000 m is not a whole number of 240 m coarse pixels
    assert exc.value.code == 2 and "multiple of 24" in capsys.readouterr().err

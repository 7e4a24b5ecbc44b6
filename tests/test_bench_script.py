"""scripts/bench.py --quick: a smoke run whose JSON must be complete, finite and self-consistent.

Times are never asserted (a benchmark prints numbers, it does not judge them); what is checked are the
relations any correct run satisfies: stage times within the run's wall time, step times within the series
time, the number of series steps the MAJA backward initialisation gives for two dates, pixel and byte
counts of an S2 tile computed here from the band layout, per-pixel extrapolation factors, peer ratios equal
to the ratio of the timings they come from.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bench.py"
FULL = 10980
# S2 groups: (bands, factor to 10 m): R1 4 bands at 10 m, R2 6 at 20 m, R3 3 at 60 m
LAYOUT = ((4, 1), (6, 2), (3, 6))


def _finite_numbers(obj, path="$"):
    """Every float/int in a JSON tree, with its path."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, (int, float)):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _finite_numbers(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _finite_numbers(v, f"{path}[{i}]")


def _run(tmp_path: Path, *extra: str) -> tuple[dict, str]:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out-json", str(out), *extra],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), proc.stdout


@pytest.fixture(scope="module")
def quick_cpu(tmp_path_factory, shared_data):
    return _run(tmp_path_factory.mktemp("bench"), "--device", "cpu")


def _check_device(res: dict, size: int, series_size: int) -> None:
    td = res["tile_date"]
    assert td["size"] == size
    for mode in ("INIT", "NOMINAL"):
        stages = td[mode]["stages_s"]
        assert stages and all(v >= 0 for v in stages.values())
        assert math.isclose(td[mode]["stages_sum_s"], sum(stages.values()), rel_tol=1e-9)
        assert td[mode]["stages_sum_s"] <= td[mode]["wall_s"] * 1.001 + 1e-3
    assert "multi-temporal masks" in td["NOMINAL"]["stages_s"]
    # the written product holds files
    assert td["written_bytes"] > 0 and td["write"] > 0

    ser = res["series"]
    # two dates 5 days apart: INIT on the younger (not written), NOMINAL backward to the older (written),
    # NOMINAL forward to the younger (written) -> 3 steps, 2 products (maja-l2a.md section 2)
    assert ser["dates"] == 2 and ser["steps"] == 3 and ser["written"] == 2
    # (a planned INIT whose result is too cloudy does not initialise: the next step runs INIT instead)
    assert set(ser["modes"]) <= {"INIT", "NOMINAL"}
    assert len(ser["step_s"]) == 3 and all(s > 0 for s in ser["step_s"])
    assert sum(ser["step_s"]) <= ser["total_s"] * 1.001 + 1e-3
    dec = ser["decode"]
    want_px = sum(nb * (series_size // f) ** 2 for nb, f in LAYOUT)
    assert dec["dn_pixels_per_date"] == want_px
    assert len(dec["per_band_mean_s"]) == 13
    assert math.isclose(sum(dec["per_band_mean_s"].values()), dec["per_date_mean_s"], rel_tol=1e-6)
    assert math.isclose(dec["decode_MPx_per_s"], want_px / dec["per_date_mean_s"] / 1e6, rel_tol=1e-6)

    rows = res["full_tile"]
    k = (FULL / size) ** 2
    r = rows["sre/fre R1"]
    assert r["extrapolated"] is True
    assert math.isclose(r["s"], td["NOMINAL"]["stages_s"]["sre/fre R1"] * k, rel_tol=1e-9)
    # the LUT reduction does not scale with the image
    assert math.isclose(rows["reduce lut"]["s"], td["NOMINAL"]["stages_s"]["reduce lut"], rel_tol=1e-9)
    # bytes of DN -> TOA on a full tile: 2 B DN read + 4 B TOA + 1 B flags written per pixel-band
    dn_px = sum(nb * (FULL // f) ** 2 for nb, f in LAYOUT)
    assert rows["dn->toa"]["bytes"] == 7 * dn_px
    bw = res["bandwidth"]["copy_GBps"] * 1e9
    assert math.isclose(rows["dn->toa"]["floor_s"], 7 * dn_px / bw, rel_tol=1e-9)
    assert math.isclose(rows["dn->toa"]["x_floor"], rows["dn->toa"]["s"] / rows["dn->toa"]["floor_s"], rel_tol=1e-9)
    # tile-year: 73 dates at the 5-day revisit -> 1 INIT + 7 backward (n_backward 8) + 72 forward = 80 steps
    ty = rows["tile-year 73 dates end-to-end"]
    assert ty["extrapolated"] is True
    assert math.isclose(ty["s"], ser["step_mean_s"] * (FULL * FULL / series_size ** 2) * 80, rel_tol=1e-9)
    for name in ("L2A compute INIT (sum of stages)", "L2A compute NOMINAL (sum of stages)", "write COG (write_l2a)",
                 "decode JP2 (13 bands, read_dn)", "L3A tile-month", "SCD tile-year"):
        assert rows[name]["s"] > 0
    assert res["memory"]["host_peak_rss_gb"] > 0


@pytest.mark.slow
def test_quick_cpu_json_is_complete_finite_and_consistent(quick_cpu):
    doc, stdout = quick_cpu
    for key in ("date", "commit", "cpu", "cpu_count", "versions", "config", "results", "targets"):
        assert key in doc
    assert doc["cpu_count"] >= 1 and doc["versions"]["numpy"]
    bad = [(p, v) for p, v in _finite_numbers(doc) if not math.isfinite(v)]
    assert not bad, bad[:5]
    assert list(doc["results"]) == ["cpu"]
    cfg = doc["config"]
    _check_device(doc["results"]["cpu"], cfg["size_cpu"], cfg["series_size_cpu"])
    assert "stage" in stdout and "x floor" in stdout and "JSON:" in stdout


@pytest.mark.slow
def test_quick_cpu_peer_ratios_follow_from_the_timings(quick_cpu):
    doc, stdout = quick_cpu
    p = doc["peers"]
    ours = p["ours_cpu"]
    h, w = p["shape"]
    assert h % 6 == 0 and w % 6 == 0 and ours["pixels"] == h * w
    assert ours["mask_chain_s"] <= ours["l2a_s"]
    s2c = p["s2cloudless"]
    if "skipped" in s2c:
        pytest.skip(s2c["skipped"])
    # same pixels on both sides: the throughput ratio is the ratio of the times
    assert math.isclose(p["ratio_cpu_mask_chain_vs_s2cloudless"], s2c["seconds"] / ours["mask_chain_s"], rel_tol=1e-9)
    assert math.isclose(p["ratio_cpu_l2a_vs_s2cloudless"], s2c["seconds"] / ours["l2a_s"], rel_tol=1e-9)
    t = [t for t in doc["targets"] if "s2cloudless" in t["target"]]
    assert len(t) == 1 and t[0]["met"] == (t[0]["value"] >= 5.0)
    assert "RATIO CPU mask chain / s2cloudless" in stdout
    six = doc["sixs"]
    if "seconds_per_run" in six:
        assert math.isclose(six["ratio_ours_vs_6s_per_pixel"], six["seconds_per_run"] / six["s_per_pixel_band_ours"],
                            rel_tol=1e-9)


@pytest.mark.slow
@pytest.mark.gpu
def test_quick_gpu(tmp_path, shared_data):
    doc, _ = _run(tmp_path, "--device", "both", "--skip-peers")
    assert set(doc["results"]) == {"cpu", "gpu"}
    g = doc["results"]["gpu"]
    _check_device(g, doc["config"]["size_gpu"], doc["config"]["series_size_gpu"])
    assert g["tile_date"]["H2D DN (pinned)"] > 0 and g["tile_date"]["D2H outputs"] > 0
    assert g["memory"]["device_pool_high_water_gb"] > 0
    bad = [(p, v) for p, v in _finite_numbers(doc) if not math.isfinite(v)]
    assert not bad, bad[:5]

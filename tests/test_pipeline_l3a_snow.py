"""End to end on small hand-made MUSCATE L2A products: `run_l3a`, `run_snow`, `run_scd` (and the CLI).

The L2A products are written by our MUSCATE writer from hand-set arrays (tests/l2a_factory.py), so
every expected value below follows from the reference rules, computed in the test.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from gpumaja.backend import CPU
from gpumaja.cli.main import run
from gpumaja.errors import InputError
from gpumaja.io.cog import write_cog
from gpumaja.io.l3a_writer import read_l3a
from gpumaja.io.muscate import write_l2a
from gpumaja.io.scd_product import read_scd
from gpumaja.io.snow_product import read_snow
from gpumaja.model.l3a import FLG_CLOUD, FLG_LAND, FLG_WATER
from gpumaja.model.wasp_params import WaspParams
from gpumaja.pipeline.l3a import run_l3a
from gpumaja.pipeline.scd import run_scd
from gpumaja.pipeline.snow import run_snow
from tests.l2a_factory import make_product, make_result

SHAPE = (48, 48)  # R1 px (10 m); R2 24 x 24 (20 m); the 240 m coarse grid is 2 x 2


def _l2a(tmp, day: date, fill, platform: str = "SENTINEL-2A") -> None:
    """Write an L2A product acquired on `day` whose groups are set by fill(group_name, group, k)."""
    p = make_product("S2", SHAPE)
    when = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=10, minutes=58)
    p = replace(p, acquired=when, platform=platform, product_id=f"S2_{day:%Y%m%d}")
    res = make_result(p, seed=day.toordinal())
    for name, g in res.groups.items():
        g.edg[:] = 0
        g.clm[:] = 0
        g.mg2[:] = 0
        g.aot[:] = 0.2
        g.water_vapour[:] = 1.0
        fill(name, g)
        g.sre[:] = g.fre
    write_l2a(res, tmp)


def _uniform(values: dict[date, float]):
    def make(day):
        def fill(name, g):
            g.fre[:] = values[day]
        return fill
    return make


def test_l3a_weighted_mean_of_clear_dates(tmp_path):
    days = {date(2024, 4, 10): 0.10, date(2024, 4, 15): 0.20, date(2024, 4, 20): 0.40}
    for d in days:
        _l2a(tmp_path / "l2a", d, _uniform(days)(d))
    params = replace(WaspParams(), directional_correction=False)
    s = run_l3a([tmp_path / "l2a"], date(2024, 4, 15), tmp_path / "l3a", CPU, params)
    res = read_l3a(s["product"])
    # no cloud, one AOT: the weights differ only by the date weight 1 - |dt|/23 * 0.5 (§1.3d, the intent)
    w = {d: 1 - abs((d - date(2024, 4, 15)).days) / 23 * 0.5 for d in days}
    expected = sum(w[d] * v for d, v in days.items()) / sum(w.values())
    for g in ("R1", "R2"):
        grp = res.groups[g]
        assert (grp.flag == FLG_LAND).all()
        np.testing.assert_allclose(grp.reflectance, expected, atol=0.6e-4)  # int16 x 10000 quantisation
        # the AOT weight at AOT 0.2: 0.33 + 0.67 * (1 - 0.2 / 0.8); the sensor weight 1
        w_aot = 0.33 + 0.67 * (1 - 0.2 / 0.8)
        np.testing.assert_allclose(grp.weight, w_aot * sum(w.values()), atol=0.6e-3)
        # weighted day of year, 0-based: 10 April 2024 = 100, 15 April = 105, 20 April = 110
        doy = {d: (d - date(2024, 1, 1)).days for d in days}
        exp_day = sum(w[d] * doy[d] for d in days) / sum(w.values())
        assert np.all(np.abs(grp.day - exp_day) <= 0.5)
    assert s["filled_percent"] == 100.0 and len(s["inputs"]) == 3 and s["excluded"] == []


def _regions(name: str, g, day_index: int, base: float) -> None:
    """Columns: [0, 1/3) clear land; [1/3, 2/3) cloud except on date 1; [2/3, 1) water; bottom rows cloud always."""
    ny, nx = g.grid.shape
    g.fre[:] = base
    g.fre[0] = base / 2  # blue
    c1, c2, r = nx // 3, 2 * nx // 3, 3 * ny // 4
    if day_index != 1:
        g.clm[:, c1:c2] = 1 | 2
    g.mg2[:, c2:] = 1
    g.clm[r:, :] = 1 | 2
    g.fre[0, r:, :] = 0.3 + 0.1 * ((day_index + 1) % 3)  # cloud blue: date 1 brightest, date 2 darkest


def test_l3a_flag_priorities_and_order_independence(tmp_path):
    days = [date(2024, 4, 10), date(2024, 4, 15), date(2024, 4, 20)]
    bases = [0.1, 0.2, 0.3]
    for i, d in enumerate(days):
        _l2a(tmp_path / "l2a", d, lambda name, g, i=i: _regions(name, g, i, bases[i]))
    _l2a(tmp_path / "l2a", date(2024, 6, 1), _uniform({date(2024, 6, 1): 0.5})(date(2024, 6, 1)))  # outside
    params = replace(WaspParams(), directional_correction=False)
    products = sorted((tmp_path / "l2a").iterdir())
    s1 = run_l3a(products, date(2024, 4, 15), tmp_path / "a", CPU, params)
    s2 = run_l3a(products[::-1], date(2024, 4, 15), tmp_path / "b", CPU, params)
    assert [e["product_id"] for e in s1["excluded"]] and "window" in s1["excluded"][0]["reason"]
    a, b = read_l3a(s1["product"]), read_l3a(s2["product"])
    for g in ("R1", "R2"):
        np.testing.assert_array_equal(a.groups[g].flag, b.groups[g].flag)
        np.testing.assert_array_equal(a.groups[g].reflectance, b.groups[g].reflectance)
        grp = a.groups[g]
        ny, nx = grp.flag.shape
        c1, c2, r = nx // 3, 2 * nx // 3, 3 * ny // 4
        assert (grp.flag[:r, :c1] == FLG_LAND).all()
        # cloudy on dates 0 and 2, land on date 1 only: land wins, with date 1's reflectance and day
        assert (grp.flag[:r, c1:c2] == FLG_LAND).all()
        np.testing.assert_allclose(grp.reflectance[1:, :r, c1:c2], bases[1], atol=0.6e-4)
        assert np.all(np.abs(grp.day[:r, c1:c2] - 105) <= 0.5)
        # water on every date: the water observation closest to the synthesis date (date 1) is kept
        assert (grp.flag[:r, c2:] == FLG_WATER).all()
        np.testing.assert_allclose(grp.reflectance[1:, :r, c2:], bases[1], atol=0.6e-4)
        # cloud on every date: the darkest blue (date 2: 0.3 + 0.1 * 0) with that date's other bands
        assert (grp.flag[r:, :] == FLG_CLOUD).all()
        if g == "R1":
            np.testing.assert_allclose(grp.reflectance[0, r:, :], 0.3, atol=0.6e-4)
        np.testing.assert_allclose(grp.reflectance[1:, r:, :], bases[2], atol=0.6e-4)
        assert (grp.weight[r:, :] == 0).all()


def test_l3a_refuses_landsat_only_and_existing_product(tmp_path):
    d = date(2024, 4, 15)
    _l2a(tmp_path / "l2a", d, _uniform({d: 0.2})(d))
    params = replace(WaspParams(), directional_correction=False)
    s = run_l3a([tmp_path / "l2a"], d, tmp_path / "out", CPU, params)
    with pytest.raises(InputError, match="already exists"):
        run_l3a([tmp_path / "l2a"], d, tmp_path / "out", CPU, params)
    with pytest.raises(InputError, match="no usable L2A product"):
        run_l3a([tmp_path / "l2a"], date(2024, 8, 15), tmp_path / "out2", CPU, params)
    assert (tmp_path / "out").is_dir() and [p.name for p in (tmp_path / "out").iterdir()] == [s["name"]]


def test_l3a_directional_correction_runs_on_land(tmp_path):
    d = date(2024, 4, 15)
    _l2a(tmp_path / "l2a", d, _uniform({d: 0.2})(d))
    on = read_l3a(run_l3a([tmp_path / "l2a"], d, tmp_path / "on", CPU)["product"])
    off = read_l3a(run_l3a([tmp_path / "l2a"], d, tmp_path / "off", CPU,
                           replace(WaspParams(), directional_correction=False))["product"])
    ratio = on.groups["R1"].reflectance / off.groups["R1"].reflectance
    # a 5-6 degree view at 30 degrees sun: a correction of a few percent, not zero, not wild
    assert np.all(np.abs(ratio - 1) < 0.1) and np.any(np.abs(ratio - 1) > 1e-3)


def _snow_fill(snowy_left: bool, snowy_right: bool):
    """Left half (x < 24 px at 10 m) / right half: snow (green 0.8, red 0.7, SWIR 0.1) or grass."""
    def fill(name, g):
        bands = list(g.bands)
        ny, nx = g.grid.shape
        half = nx // 2
        for side, snowy in ((slice(0, half), snowy_left), (slice(half, nx), snowy_right)):
            vals = {"B03": 0.8, "B04": 0.7, "B11": 0.1} if snowy else {"B03": 0.08, "B04": 0.05, "B11": 0.25}
            for b, v in vals.items():
                if b in bands:
                    g.fre[bands.index(b), :, side] = v
    return fill


def test_snow_then_scd_by_hand(tmp_path):
    dem = tmp_path / "dem.tif"
    p = make_product("S2", SHAPE)
    write_cog(dem, np.full(p.grids["R1"].shape, 2000.0, np.float32), p.grids["R1"], "float32", None)
    # left: snow on 10, 20, 30 January; right: snow on 10 January, grass on 20 and 30 January
    plan = {date(2024, 1, 10): (True, True), date(2024, 1, 20): (True, False), date(2024, 1, 30): (True, False)}
    for d, (left, right) in plan.items():
        _l2a(tmp_path / "l2a", d, _snow_fill(left, right))
    summaries = run_snow([tmp_path / "l2a"], dem, tmp_path / "snow", CPU)
    assert len(summaries) == 3
    m = read_snow(summaries[0]["product"])
    assert m.grid.resolution == 20.0
    assert (m.snw[:, :12] == 100).all() and (m.snw[:, 12:] == 100).all()
    m2 = read_snow(summaries[1]["product"])
    assert (m2.snw[:, :12] == 100).all() and (m2.snw[:, 12:] == 0).all()
    s = run_scd([tmp_path / "snow"], date(2024, 1, 1), date(2024, 1, 31), tmp_path / "scd", CPU)
    d = read_scd(s["product"])
    # left: snow at every observation -> every day of January (constant extrapolation): 31 days, 0..30
    assert (d.scd[:, :12] == 31).all() and (d.sod[:, :12] == 0).all() and (d.smod[:, :12] == 30).all()
    # right: snow on day 9, none on day 19: days 0..14 are snow (day 14 is the midpoint, v = 0.5)
    assert (d.scd[:, 12:] == 15).all() and (d.sod[:, 12:] == 0).all() and (d.smod[:, 12:] == 14).all()
    assert (d.nobs == 3).all()


def test_cli_l3a_bad_input_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = run(["l3a", str(tmp_path / "empty"), "--date", "2024-04-15", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "no MUSCATE product" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "o").exists()
    code = run(["scd", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert code == 2

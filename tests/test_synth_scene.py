"""Checks of the synthetic truth generator (gpumaja.synth.scene): physics that can fail."""

from __future__ import annotations

import itertools
from datetime import date, timezone

import numpy as np
import pytest

from gpumaja.synth import scene

SIZE = 240
SEED = 0


@pytest.fixture(scope="module")
def series():
    land = scene.make_landscape(SIZE, SEED)
    return land, [scene.synthesize_date(land, p) for p in scene.plan_dates(4)]


def _by_sky(truths, sky):
    return next(t for t in truths if t.plan.sky == sky)


def test_size_must_be_a_multiple_of_6():
    with pytest.raises(ValueError, match="multiple of 6"):
        scene.make_landscape(125, 0)
    with pytest.raises(ValueError):
        scene.check_size(6)


def test_calendar_platforms_and_sky():
    plans = scene.plan_dates(6)
    assert plans[0].day == date(2024, 1, 5)
    assert [(b.day - a.day).days for a, b in itertools.pairwise(plans)] == [5] * 5
    assert [p.platform for p in plans[:4]] == ["SENTINEL-2A", "SENTINEL-2B"] * 2
    assert [p.sky for p in plans[:4]] == ["clear", "partly", "very_cloudy", "clear"]
    assert all(p.acquired.tzinfo == timezone.utc and p.acquired.hour == 10 for p in plans)
    assert scene.plan_dates(1, date(2024, 6, 1))[0].day == date(2024, 6, 1)


def test_sun_position_toulouse_winter_and_summer():
    from datetime import datetime

    zen, az = scene.solar_position(datetime(2024, 1, 20, 10, 58, 50, tzinfo=timezone.utc), 43.73, 1.18)
    # the real T31TCJ SAFE of that date has a mean sun zenith of 65.76 deg, azimuth 162.7 deg
    assert float(zen) == pytest.approx(65.76, abs=0.5)
    assert float(az) == pytest.approx(162.7, abs=1.0)
    zen_summer, _ = scene.solar_position(datetime(2024, 6, 21, 10, 50, tzinfo=timezone.utc), 44.0, 0.5)
    assert 22 < float(zen_summer) < 28  # noon would be 44 - 23.4 = 20.6 deg


def test_fields_ranges(series):
    land, truths = series
    assert land.dem.min() >= 100 and land.dem.max() <= 2400
    assert land.water.any()
    for t in truths:
        assert t.surface.shape == (13, SIZE, SIZE) and t.surface.dtype == np.float32
        assert 0.0 <= t.surface.min() and t.surface.max() <= 1.0
        assert 0.02 <= t.aot.min() and t.aot.max() <= 0.6
        assert 0.1 <= t.water_vapour.min() and t.water_vapour.max() <= 4.0
        assert t.toa["B02"].shape == (SIZE, SIZE)
        assert t.toa["B05"].shape == (SIZE // 2, SIZE // 2)
        assert t.toa["B10"].shape == (SIZE // 6, SIZE // 6)
        assert 60 < float(t.sun_zenith.mean()) < 72  # January, 44 N, 10:50 UTC
        vz = [v[0] for v in t.view_mean.values()]
        assert 2 <= min(vz) and max(vz) <= 10


def test_cloud_cover_per_sky(series):
    _, truths = series
    assert _by_sky(truths, "clear").stats["cloud_percent"] == 0.0
    assert 5 < _by_sky(truths, "partly").stats["cloud_percent"] < 50
    assert _by_sky(truths, "very_cloudy").stats["cloud_percent"] > 50
    partly = _by_sky(truths, "partly")
    alts = partly.cloud_altitude[partly.cloud_mask]
    assert alts.min() >= 1000 and alts.max() <= 8000
    # thin edges: optical thickness tapers to 0 around clouds
    assert ((partly.cloud_tau > 0) & (partly.cloud_tau < 1)).sum() > 0


def test_cloud_pixels_are_bright_in_all_bands(series):
    _, truths = series
    t = _by_sky(truths, "very_cloudy")
    thick = t.cloud_tau > 15
    assert thick.sum() > 100
    for b in ("B02", "B03", "B04", "B08"):
        assert np.all(t.toa[b][thick] > 0.3), b
        assert np.all(t.toa[b][thick] > t.toa_clear[b][thick]), b
    thick20 = scene.block_mean(thick.astype(float), 2) == 1
    for b in ("B05", "B8A", "B11", "B12"):
        assert np.all(t.toa[b][thick20] > 0.25), b
    thick60 = scene.block_mean(thick.astype(float), 6) == 1
    assert thick60.any()
    for b in ("B01", "B09"):
        assert np.all(t.toa[b][thick60] > 0.15), b


def test_shadow_pixels_are_darker(series):
    _, truths = series
    t = _by_sky(truths, "partly")
    shadow = t.shadow_mask & (t.cirrus_tau == 0) & (t.cloud_tau == 0)
    assert shadow.sum() > 20
    for b in ("B04", "B08"):
        assert np.all(t.toa[b][shadow] < t.toa_clear[b][shadow]), b
        assert np.mean(t.toa[b][shadow] / t.toa_clear[b][shadow]) < 0.8
    # and darker than the same ground on the clear date (surface nearly unchanged in 5 days)
    clear = _by_sky(truths, "clear")
    assert np.mean(t.toa["B08"][shadow]) < 0.8 * np.mean(clear.toa["B08"][shadow])


def test_b10_dark_when_clear_and_bright_under_cirrus(series):
    _, truths = series
    clear = _by_sky(truths, "clear")
    assert float(clear.toa["B10"].max()) < 0.01
    t = _by_sky(truths, "partly")
    cirrus60 = scene.block_mean(((t.cirrus_tau > 0.5) & (t.cloud_tau == 0)).astype(float), 6) == 1
    free60 = scene.block_mean(((t.cirrus_tau == 0) & (t.cloud_tau == 0)).astype(float), 6) == 1
    assert cirrus60.sum() > 5 and free60.sum() > 5
    assert np.all(t.toa["B10"][cirrus60] > 0.02)
    assert np.all(t.toa["B10"][free60] < 0.01)
    # cirrus is only weakly visible in the red compared with its B10 contrast over a dark background
    red60 = scene.block_mean(t.toa["B04"].astype(np.float64), 6)
    red_clear60 = scene.block_mean(t.toa_clear["B04"].astype(np.float64), 6)
    assert np.median((red60 - red_clear60)[cirrus60]) < 0.1


def test_snow_on_high_ground_in_winter(series):
    land, truths = series
    t = truths[0]
    assert t.snow_line_m is not None and t.snow.any()
    assert np.median(land.dem[t.snow]) > np.median(land.dem)
    ndsi = (t.surface[2] - t.surface[11]) / (t.surface[2] + t.surface[11])
    assert np.all(ndsi[t.snow] > 0.4)
    summer = scene.synthesize_date(land, scene.plan_dates(1, date(2024, 7, 15))[0])
    assert not summer.snow.any()


def test_vegetation_greens_up_through_spring():
    land = scene.make_landscape(120, 3)
    crop = land.classes == scene.CLASS_CODE["crop"]
    ndvi = []
    for day in (date(2024, 1, 5), date(2024, 4, 15), date(2024, 6, 1)):
        rho, _ = scene.surface_reflectance(land, day, None)
        ndvi.append(float(np.mean(((rho[8] - rho[3]) / (rho[8] + rho[3]))[crop])))
    assert ndvi[0] < ndvi[1] < ndvi[2]


def test_deterministic_for_a_seed():
    a = scene.make_landscape(120, 5)
    b = scene.make_landscape(120, 5)
    plan = scene.plan_dates(2)[1]
    ta, tb = scene.synthesize_date(a, plan), scene.synthesize_date(b, plan)
    for band in ("B02", "B8A", "B10"):
        np.testing.assert_array_equal(ta.toa[band], tb.toa[band])
    np.testing.assert_array_equal(ta.cloud_tau, tb.cloud_tau)
    other = scene.synthesize_date(scene.make_landscape(120, 6), plan)
    assert not np.array_equal(ta.toa["B02"], other.toa["B02"])

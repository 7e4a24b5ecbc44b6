"""Checks of the synthetic truth generator (gpumaja.synth.scene): physics that can fail."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date, timedelta, timezone

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


def test_calendar_revisit():
    plans = scene.plan_dates(5, date(2023, 11, 1), revisit_days=12)
    assert [p.day for p in plans] == [date(2023, 11, 1) + timedelta(days=12 * i) for i in range(5)]
    assert [p.platform for p in plans[:2]] == ["SENTINEL-2A", "SENTINEL-2B"]
    assert [p.sky for p in plans[:4]] == ["clear", "partly", "very_cloudy", "clear"]
    # the absolute orbit follows the day (14.3 orbits per day), whatever the revisit
    a, b = scene.plan_dates(3, date(2024, 1, 20), revisit_days=10)[::2]
    assert b.absolute_orbit - a.absolute_orbit == 286
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match="revisit"):
            scene.plan_dates(2, revisit_days=bad)


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
        # brighter than the clear sky below, except over snow (a thick cloud reflects less than fresh snow)
        dark_ground = thick & ~t.snow
        assert np.all(t.toa[b][dark_ground] > t.toa_clear[b][dark_ground]), b
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
    # a snow pixel has a snow fraction > 0.5: a 50/50 mix of snow (green 0.92, SWIR 0.08) and the
    # brightest soil (x 1.25, texture ~1.1: 0.18 / 0.45) has NDSI (0.55 - 0.27) / (0.55 + 0.27) ~ 0.35;
    # from a 60 % snow fraction on, NDSI ~ (0.62 - 0.23) / (0.62 + 0.23) ~ 0.46
    fs, _ = scene.snow_cover(land, t.snow_line_m)
    assert np.all(ndsi[t.snow] > 0.3)
    assert np.all(ndsi[fs >= 0.6] > 0.4)
    summer = scene.synthesize_date(land, scene.plan_dates(1, date(2024, 7, 15))[0])
    assert not summer.snow.any()


# --------------------------------------------------------------------------------------------------
# The daily snow truth: snow line = f(seed, day)
# --------------------------------------------------------------------------------------------------

def _days(first: date, last: date):
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _winter(day: date) -> float:
    return 0.5 + 0.5 * np.cos(2 * np.pi * (day.timetuple().tm_yday - 15) / 365.0)


def test_clouds_and_atmosphere_unchanged_by_the_daily_snow_line(series):
    # values of the generator before the snow line became a function of (seed, day) (git 730e48d):
    # the random draws it made for the snow line are kept, so clouds, AOT and water vapour are the same
    _, truths = series
    before = {date(2024, 1, 5): (0.0, 0.0, 0.1682, 0.901), date(2024, 1, 10): (13.998, 29.002, 0.3011, 0.7347),
              date(2024, 1, 15): (88.229, 0.0, 0.0697, 1.0861), date(2024, 1, 20): (0.0, 0.0, 0.1557, 1.1142)}
    for t in truths:
        s = t.stats
        assert (s["cloud_percent"], s["cirrus_percent"], s["mean_aot"], s["mean_water_vapour"]) == before[t.plan.day]
    assert float(_by_sky(truths, "partly").cloud_tau.sum()) == pytest.approx(155167.96875, rel=1e-6)


def test_snow_line_of_a_day_does_not_depend_on_the_dates_generated(series):
    land, truths = series
    jan15 = next(t for t in truths if t.plan.day == date(2024, 1, 15))  # 3rd date of a 5-day series
    # the same day as the only date of a series, or inside a 10-day series started elsewhere
    alone = scene.synthesize_date(land, scene.plan_dates(1, date(2024, 1, 15))[0])
    other = scene.synthesize_date(land, scene.plan_dates(3, date(2023, 12, 26), revisit_days=10)[2])
    assert other.plan.day == date(2024, 1, 15)
    assert jan15.snow_line_m is not None
    assert alone.snow_line_m == other.snow_line_m == jan15.snow_line_m
    np.testing.assert_array_equal(alone.snow, jan15.snow)
    np.testing.assert_array_equal(other.snow, jan15.snow)
    # and not on the order in which days are asked for (a fresh per-seed cache)
    scene._snow_weather.cache_clear()
    later_first = [scene.snow_line_m(SEED, d) for d in reversed(_days(date(2023, 12, 1), date(2024, 2, 1)))]
    scene._snow_weather.cache_clear()
    in_order = [scene.snow_line_m(SEED, d) for d in _days(date(2023, 12, 1), date(2024, 2, 1))]
    assert later_first[::-1] == in_order
    assert scene.snow_line_m(SEED + 1, date(2024, 1, 15)) != scene.snow_line_m(SEED, date(2024, 1, 15))


def test_per_date_truth_snow_is_the_daily_truth(series):
    land, truths = series
    for t in truths:
        assert t.snow_line_m == scene.snow_line_m(SEED, t.plan.day)
        np.testing.assert_array_equal(t.snow, scene.true_snow(land, t.plan.day))
        assert t.stats["snow_percent"] == round(100.0 * float(t.snow.mean()), 3)


def test_snow_line_seasonal_curve_weather_and_snowfall():
    days = _days(date(2000, 9, 1), date(2030, 8, 31))
    lines = {d: scene.snow_line_m(3, d) for d in days}
    # snow only while winter(day) > 0.6, i.e. |doy - 15| < ~79.5 days
    for d, line in lines.items():
        assert (line is None) == (_winter(d) <= 0.6), d
    assert lines[date(2024, 1, 15)] is not None and lines[date(2024, 7, 15)] is None
    assert lines[date(2023, 10, 20)] is None and lines[date(2023, 11, 5)] is not None
    assert lines[date(2024, 3, 30)] is not None and lines[date(2024, 4, 10)] is None
    # around the seasonal curve: weather within +-150 m, snowfall lowers it by up to 300 m more
    dev = np.array([line - (2600 - 1400 * _winter(d)) for d, line in lines.items() if line is not None])
    assert dev.max() <= 150 + 1e-6 and dev.min() >= -450 - 1e-6
    assert dev.max() > 100 and dev.min() < -350
    # day to day: weather (periods >= 10 days) moves it by <= 2 pi 150 / 10 = 94 m/day and the season by
    # <= 1400 pi / 365 = 12 m/day; snowfall recovers <= 300 / 6 = 50 m/day; only a snowfall drops it by more
    steps = np.array([lines[b] - lines[a] for a, b in itertools.pairwise(days)
                      if lines[a] is not None and lines[b] is not None])
    assert steps.max() <= 94.3 + 12.1 + 50.0 + 1e-6
    big_drops = (steps < -(94.3 + 12.1 + 1e-6)).mean()
    assert 1 / 40 < big_drops <= 1 / 12 * 1.15  # events ~1 per 12 days (a drop within a recovery is smaller)


def test_snowfall_event_drops_300_m_and_recovers_linearly():
    days = _days(date(2005, 1, 1), date(2014, 12, 31))
    drop = np.array([scene.snowfall_drop_m(5, d) for d in days])
    assert drop.min() == 0.0 and drop.max() == 300.0
    events = np.flatnonzero(drop == 300.0)
    isolated = [e for e in events if np.sum(np.abs(events - e) <= 10) == 1 and 10 <= e < drop.size - 11]
    assert len(isolated) > 20
    for e in isolated:
        seg = drop[e:e + 11]
        r = int(np.argmax(seg == 0.0))  # recovered after r days
        assert 6 <= r <= 10
        np.testing.assert_allclose(seg[:r + 1], 300.0 * (1 - np.arange(r + 1) / r), atol=1e-9)
        assert np.all(seg[r:] == 0.0)
    with pytest.raises(ValueError, match="calendar"):
        scene.snowfall_drop_m(0, date(1969, 12, 31))


def test_snow_cover_fraction_by_hand():
    land = scene.make_landscape(60, 2)
    line = float(np.median(land.dem))
    fs, snow = scene.snow_cover(land, line)
    assert fs.dtype == np.float32 and snow.dtype == bool and fs.shape == snow.shape == (60, 60)
    want = np.clip((land.dem.astype(np.float64) - line) / 250.0 + 3.0 * (land.texture - 1.0), 0.0, 1.0)
    half = land.water | (land.classes == scene.CLASS_CODE["forest"])
    want[half] *= 0.5
    np.testing.assert_allclose(fs, want, atol=1e-5)
    np.testing.assert_array_equal(snow[np.abs(want - 0.5) > 1e-5], want[np.abs(want - 0.5) > 1e-5] > 0.5)
    assert snow.any() and not snow[half].any()  # forest and water never count as snow
    fs0, snow0 = scene.snow_cover(land, None)
    assert not fs0.any() and not snow0.any()
    # the surface blends snow with the fraction
    rho, s2 = scene.surface_reflectance(land, date(2024, 1, 15), line)
    rho0, _ = scene.surface_reflectance(land, date(2024, 1, 15), None)
    np.testing.assert_array_equal(s2, snow)
    full = fs == 1.0
    assert full.any()
    np.testing.assert_allclose(rho[3][full], scene.SPECTRA["snow"][3], atol=1e-6)
    none = fs == 0.0
    np.testing.assert_array_equal(rho[:, none], rho0[:, none])


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


# --------------------------------------------------------------------------------------------------
# Abrupt parcel-level surface changes: harvest / ploughing of crops, mowing of grass
# --------------------------------------------------------------------------------------------------

def _day(doy: int) -> date:
    return date(2024, 1, 1) + timedelta(days=doy - 1)


def _events_off(land):
    never = np.full(land.classes.shape, np.inf, np.float32)
    return dataclasses.replace(land, harvest_doy=never, mow_doy=never.copy())


def _pick_harvested_parcel(land, min_greening_days=30):
    """A harvested crop parcel that was well green before its harvest (cover >~ 0.5), on low ground."""
    crop = land.classes == scene.CLASS_CODE["crop"]
    for pid in np.unique(land.parcel[crop & np.isfinite(land.harvest_doy)]):
        px = crop & (land.parcel == pid)
        h = float(land.harvest_doy[px][0])
        if px.sum() >= 50 and float(land.greenup_doy[px][0]) + min_greening_days < h and h >= 25:
            return px, int(h)
    pytest.skip("no suitable harvested parcel for this seed")


def test_events_drawn_per_parcel_and_deterministic():
    a, b = scene.make_landscape(240, 0), scene.make_landscape(240, 0)
    np.testing.assert_array_equal(a.harvest_doy, b.harvest_doy)
    np.testing.assert_array_equal(a.mow_doy, b.mow_doy)
    c = scene.make_landscape(240, 1)
    assert not np.array_equal(np.isfinite(a.harvest_doy), np.isfinite(c.harvest_doy))
    crop = a.classes == scene.CLASS_CODE["crop"]
    grass = a.classes == scene.CLASS_CODE["grass"]
    # only crops are harvested, only grass is mown, inside days 15..120, whole days
    assert not np.isfinite(a.harvest_doy[~crop]).any() and not np.isfinite(a.mow_doy[~grass]).any()
    for days in (a.harvest_doy[np.isfinite(a.harvest_doy)], a.mow_doy[np.isfinite(a.mow_doy)]):
        assert days.size and days.min() >= 15 and days.max() <= 120 and np.all(days == np.round(days))
    # one day per parcel
    for pid in np.unique(a.parcel[crop]):
        assert np.unique(a.harvest_doy[crop & (a.parcel == pid)]).size == 1
    crop_parcels = np.unique(a.parcel[crop])
    harvested_parcels = np.unique(a.parcel[crop & np.isfinite(a.harvest_doy)])
    assert 0.15 <= harvested_parcels.size / crop_parcels.size <= 0.45  # ~30 %
    grass_parcels = np.unique(a.parcel[grass])
    mown_parcels = np.unique(a.parcel[grass & np.isfinite(a.mow_doy)])
    assert 0.15 <= mown_parcels.size / grass_parcels.size <= 0.65  # ~40 %
    # the events have their own random stream: the rest of the landscape does not depend on them
    np.testing.assert_array_equal(a.classes, b.classes)


def test_harvested_surface_is_tilled_soil():
    land = scene.make_landscape(120, 3)
    px, h = _pick_harvested_parcel(land)
    rho, _ = scene.surface_reflectance(land, _day(h), None)
    veg, soil = (np.asarray(scene.SPECTRA[k], np.float64) for k in ("vegetation", "soil"))
    for bi in (3, 7, 11):  # B04, B08, B11: 0.05 cover over soil darkened by 10 %
        want = (0.05 * veg[bi] + 0.95 * soil[bi] * 0.9 * land.soil_brightness[px]) * land.texture[px]
        np.testing.assert_allclose(rho[bi][px], want, rtol=1e-5)


def test_harvest_day_nir_drops_red_rises_others_unaffected():
    land = scene.make_landscape(120, 3)
    off = _events_off(land)
    px, h = _pick_harvested_parcel(land)
    before, at = _day(h - 1), _day(h)
    rho_b, _ = scene.surface_reflectance(land, before, None)
    rho_a, _ = scene.surface_reflectance(land, at, None)
    # surface: NIR (B08) drops, red (B04) and blue (B02) rise on the parcel from its harvest day
    assert np.all(rho_a[7][px] < rho_b[7][px] - 0.05)
    assert np.all(rho_a[3][px] > rho_b[3][px] + 0.02)
    assert np.all(rho_a[1][px] > rho_b[1][px])
    # the day before, the parcel is what it would be without any event
    np.testing.assert_array_equal(rho_b[:, px], scene.surface_reflectance(off, before, None)[0][:, px])
    # pixels without an event up to that day are unaffected, every band, before and at the harvest day
    for day, rho in ((before, rho_b), (at, rho_a)):
        quiet = ~land.harvested(day) & ~land.mown(day)
        np.testing.assert_array_equal(rho[:, quiet], scene.surface_reflectance(off, day, None)[0][:, quiet])
    # TOA (clear sky) on the first acquisition on/after the harvest day, against the same date without
    # events (same atmosphere): NIR lower, red higher on the parcel
    plan = scene.plan_dates(2, _day(h - 3))[1]
    assert plan.day >= at
    t_on, t_off = scene.synthesize_date(land, plan), scene.synthesize_date(off, plan)
    if t_on.snow_line_m is not None:
        px = px & (land.dem < t_on.snow_line_m - 400.0)
        assert px.sum() >= 20
    assert np.all(t_on.toa_clear["B08"][px] < t_off.toa_clear["B08"][px] - 0.03)
    assert np.all(t_on.toa_clear["B04"][px] > t_off.toa_clear["B04"][px] + 0.01)
    assert t_on.stats["harvested_percent"] > 0.0 and t_off.stats["harvested_percent"] == 0.0


def test_mown_grass_halves_then_regrows():
    land = scene.make_landscape(240, 0)
    grass = (land.classes == scene.CLASS_CODE["grass"]) & np.isfinite(land.mow_doy)
    m = int(land.mow_doy[grass][0])
    px = grass & (land.mow_doy == m)
    veg, soil = (np.asarray(scene.SPECTRA[k], np.float64) for k in ("vegetation", "soil"))
    rho_before = scene.surface_reflectance(land, _day(m - 1), None)[0][7][px]
    for days_after, factor in ((0, 0.5), (15, 0.75), (30, 1.0), (45, 1.0)):
        day = _day(m + days_after)
        doy = m + days_after
        season = 0.5 - 0.5 * np.cos(2 * np.pi * (doy - 15) / 365.0)
        fc = (0.5 + 0.35 * season * land.fc_max[px]) * factor
        want = (fc * veg[7] + (1 - fc) * soil[7] * land.soil_brightness[px]) * land.texture[px]
        got = scene.surface_reflectance(land, day, None)[0][7][px]
        np.testing.assert_allclose(got, want, rtol=1e-5)
        if days_after == 0:
            assert np.all(got < rho_before - 0.02)  # NIR drops on the mowing day

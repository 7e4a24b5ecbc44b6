"""The truth generator of the synthetic Sentinel-2 series: pure numpy, seeded, no file I/O.

A square 10 m tile of `size` x `size` pixels at the upper-left corner of MGRS tile T31TCJ carries:

- a static landscape (:func:`make_landscape`): smooth fractal DEM (~150-2300 m), water bodies in low
  ground, urban patches, forest, grassland, crop parcels (irregular, each with its own soil brightness
  and green-up date) and rock on high ground;
- abrupt parcel-level surface changes (:func:`make_landscape`, :func:`surface_reflectance`): ~30 % of the
  crop parcels are harvested / ploughed on a day of year drawn per parcel in 15-120 (vegetation cover
  drops to 0.05 over freshly tilled, slightly darker soil, and stays so), ~40 % of the grass parcels are
  mown on such a day (cover halved, regrowing linearly over 30 days);
- per date (:func:`synthesize_date`): surface reflectance from class spectra and the season (crop and
  grass green-up, harvests and mowing, snow above the day's snow line in winter), smooth AOT (550 nm) and water
  vapour fields, thick clouds (thresholded fractal field, optical thickness tapering to 0 at the
  edges, one altitude of 1-8 km per cloud object, seen with view parallax), their geometric shadows
  (projected from the cloud's altitude along the sun direction, dimming the direct beam), a thin
  cirrus layer (8-12 km) on some dates, and the TOA reflectance of every band from the forward model
  of :mod:`gpumaja.synth.atmosphere`;
- a daily snow truth (:func:`snow_line_m`, :func:`snow_cover`, :func:`true_snow`): the snow line is a
  deterministic function of (seed, day) — a seasonal curve, smooth weather sinusoids and snowfall events
  drawn once per seed — so the true snow cover exists on every day, acquired or not (what a snow cover
  duration is scored against).

Class spectra (surface reflectance, S2 bands B01..B12) are approximate typical values of the USGS
splib07 / ECOSTRESS (ASTER) spectral libraries resampled by eye to the S2 bands: green vegetation
(red ~0.035, NIR ~0.40, SWIR1 ~0.22), loamy soil (monotonic rise 0.07 -> 0.33), urban (flat ~0.1-0.2),
clear inland water (0.05 blue -> ~0 in SWIR), fresh snow (~0.9 in the visible, < 0.1 in SWIR, NDSI ~0.85),
bare rock. They are stand-ins, not measurements.

Cloud radiometry: a cloud of optical thickness tau (asymmetry g = 0.85 for water, 0.8 for ice) reflects
R = (1 - g) tau / (2 + (1 - g) tau) and transmits T = 1 - R (conservative two-stream cloud), slightly
absorbing in B11/B12 (factor exp(-k tau)). It is added on top of the clear-sky signal below it with
the adding formula rho = t_g,above [R + T^2 rho_b / (1 - R rho_b)], where rho_b is the clear TOA signal
without the gas above the cloud; only the water vapour above the cloud (scale height 2 km) absorbs its
light, which is why high clouds and cirrus stand out in B10 (1375 nm) while the ground does not.
A shadow multiplies the direct solar beam reaching the ground by exp(-(1 - g) tau / mu_s).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
from scipy import ndimage

from gpumaja.model.angles import circular_mean_deg
from gpumaja.synth.atmosphere import (
    S2_BAND_NAMES,
    AtmosphereTerms,
    ForwardLUT,
    default_lut,
    gas_transmission,
)

# --------------------------------------------------------------------------------------------------
# Constants: geometry and calendar
# --------------------------------------------------------------------------------------------------

TILE = "T31TCJ"
CRS = "EPSG:32631"
UL_X, UL_Y = 300000.0, 4900020.0
UL_LAT, UL_LON = 44.22596415476343, 0.495928592903789  # T31TCJ UL corner (MTD_MSIL1C EXT_POS_LIST)
RELATIVE_ORBIT = 51
DEFAULT_START = date(2024, 1, 5)
REVISIT_DAYS = 5
ACQUISITION_TIME = time(10, 50, 21, 24000)  # datatake start, UTC
ANGLE_STEP_M = 5000.0
DETECTORS = (4, 5)  # two detectors with an overlap

BAND_RES = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
            "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
# small per-band viewing offsets (deg): zenith, azimuth (inter-band stagger of the focal plane)
BAND_VIEW_OFFSET = {b: (0.03 * (i - 6), 0.4 * ((i % 3) - 1)) for i, b in enumerate(S2_BAND_NAMES)}

# --------------------------------------------------------------------------------------------------
# Spectra (B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12)
# --------------------------------------------------------------------------------------------------

SPECTRA = {
    "vegetation": (0.025, 0.035, 0.075, 0.035, 0.11, 0.28, 0.36, 0.40, 0.41, 0.40, 0.06, 0.22, 0.10),
    "forest": (0.020, 0.025, 0.050, 0.025, 0.07, 0.18, 0.24, 0.27, 0.28, 0.27, 0.04, 0.14, 0.06),
    "soil": (0.070, 0.090, 0.130, 0.170, 0.19, 0.21, 0.23, 0.25, 0.26, 0.27, 0.25, 0.33, 0.29),
    "urban": (0.090, 0.100, 0.120, 0.130, 0.14, 0.15, 0.16, 0.17, 0.17, 0.18, 0.17, 0.20, 0.18),
    "water": (0.055, 0.050, 0.045, 0.025, 0.018, 0.010, 0.008, 0.006, 0.005, 0.004, 0.001, 0.002, 0.001),
    "snow": (0.93, 0.93, 0.92, 0.90, 0.89, 0.87, 0.85, 0.81, 0.79, 0.70, 0.12, 0.08, 0.06),
    "rock": (0.10, 0.12, 0.15, 0.18, 0.20, 0.21, 0.22, 0.23, 0.24, 0.24, 0.22, 0.28, 0.25),
}
CLASSES = ("crop", "grass", "forest", "urban", "water", "rock")
CLASS_CODE = {c: i for i, c in enumerate(CLASSES)}

# cloud optics
G_WATER_CLOUD, G_ICE = 0.85, 0.80
CLOUD_SWIR_ABSORPTION = {"B11": 0.005, "B12": 0.012, "B10": 0.002}  # k in exp(-k tau)
WATER_VAPOUR_SCALE_HEIGHT_M = 2000.0
AEROSOL_SCALE_HEIGHT_M = 2000.0
CLOUD_MASK_TAU = 1.0  # truth cloud mask: optical thickness above this (R ~ 0.07)
CIRRUS_MASK_TAU = 0.2  # truth cirrus mask (R ~ 0.02)
SHADOW_SUN_MAX = 0.5  # truth shadow mask: direct beam reduced below half
ENV_RADIUS_M = 500.0  # environment: box mean of surface reflectance, 1 km wide

SKY_KINDS = ("clear", "partly", "very_cloudy", "cirrus")

# abrupt surface changes (parcel level): harvest / ploughing of crops, mowing of grass
HARVEST_FRACTION = 0.3  # of the crop parcels
HARVEST_DOY_RANGE = (15, 120)  # harvest day of year drawn uniformly (integer, inclusive) per parcel
HARVEST_COVER = 0.05  # vegetation cover of a harvested parcel from its harvest day on
HARVEST_SOIL_FACTOR = 0.9  # freshly tilled soil is slightly darker (rougher, moister)
MOW_FRACTION = 0.4  # of the grass parcels
MOW_DOY_RANGE = (15, 120)
MOW_COVER_FACTOR = 0.5  # cover multiplied by this on the mowing day ...
MOW_REGROWTH_DAYS = 30.0  # ... and back to normal linearly over this many days
NO_EVENT_DOY = np.inf  # harvest_doy / mow_doy of pixels without an event

# daily snow line (snow_line_m): seasonal curve + weather + snowfall events, from the stream [seed, 7]
SNOW_WINTER_MIN = 0.6  # snow only while winter(day) > this (~28 Oct .. ~4 Apr)
SNOW_LINE_SUMMIT_M = 2600.0  # snow line = SNOW_LINE_SUMMIT_M - SNOW_LINE_SEASON_M * winter(day) ...
SNOW_LINE_SEASON_M = 1400.0
SNOW_WEATHER_TERMS = 4  # ... + a sum of this many sinusoids (weather) ...
SNOW_WEATHER_PERIOD_DAYS = (10.0, 40.0)  # ... of periods drawn uniformly in this range ...
SNOW_WEATHER_AMPLITUDE_M = 150.0  # ... whose amplitudes sum to this
SNOWFALL_RATE_PER_DAY = 1.0 / 12.0  # snowfall events: Bernoulli per day (Poisson-like, ~1 per 12 days)
SNOWFALL_DROP_M = 300.0  # the line drops by this on an event day ...
SNOWFALL_RECOVERY_DAYS = (6, 10)  # ... and recovers linearly over this many days (inclusive, per event)
SNOW_CALENDAR = (date(1970, 1, 1), date(2100, 12, 31))  # days on which snowfall events are drawn
SNOW_TRANSITION_M = 250.0  # snow fraction rises from 0 to 1 over this height above the snow line


# --------------------------------------------------------------------------------------------------
# Random fields
# --------------------------------------------------------------------------------------------------


def fractal_field(rng: np.random.Generator, shape: tuple[int, int], beta: float = 3.0,
                  scale_px: float = 50.0) -> np.ndarray:
    """Zero-mean unit-variance random field with power spectrum ~ (k^2 + k0^2)^(-beta/2), k0 = 1/scale."""
    h, w = shape
    noise = rng.standard_normal(shape)
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    k0 = 1.0 / max(scale_px, 1.0)
    filt = (kx * kx + ky * ky + k0 * k0) ** (-beta / 4.0)
    f = np.fft.irfft2(np.fft.rfft2(noise) * filt, s=shape)
    f -= f.mean()
    sd = f.std()
    return f / sd if sd > 0 else f


def _normalise01(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


# --------------------------------------------------------------------------------------------------
# Geometry: sun position, view angles
# --------------------------------------------------------------------------------------------------


def solar_position(when: datetime, lat_deg, lon_deg) -> tuple[np.ndarray, np.ndarray]:
    """Sun zenith and azimuth (deg, azimuth clockwise from north) — NOAA general solar position
    (Spencer 1971 series for declination and equation of time)."""
    when = when.astimezone(timezone.utc)
    doy = when.timetuple().tm_yday
    hours = when.hour + when.minute / 60 + (when.second + when.microsecond / 1e6) / 3600
    gam = 2 * math.pi / 365.0 * (doy - 1 + (hours - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(gam) - 0.032077 * math.sin(gam)
                       - 0.014615 * math.cos(2 * gam) - 0.040849 * math.sin(2 * gam))
    decl = (0.006918 - 0.399912 * math.cos(gam) + 0.070257 * math.sin(gam) - 0.006758 * math.cos(2 * gam)
            + 0.000907 * math.sin(2 * gam) - 0.002697 * math.cos(3 * gam) + 0.00148 * math.sin(3 * gam))
    lat = np.deg2rad(np.asarray(lat_deg, np.float64))
    lon = np.asarray(lon_deg, np.float64)
    tst = hours * 60 + eqtime + 4 * lon  # true solar time, minutes
    ha = np.deg2rad(tst / 4 - 180)
    cosz = np.sin(lat) * math.sin(decl) + np.cos(lat) * math.cos(decl) * np.cos(ha)
    zen = np.arccos(np.clip(cosz, -1, 1))
    az = np.arctan2(np.sin(ha), np.cos(ha) * np.sin(lat) - np.tan(decl) * np.cos(lat))
    az = (np.degrees(az) + 180.0) % 360.0
    return np.degrees(zen), az


def xy_to_latlon(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Local (tile-scale) approximation of UTM 31N -> lat/lon around the T31TCJ UL corner."""
    dx = np.asarray(x, np.float64) - UL_X
    dy = np.asarray(y, np.float64) - UL_Y
    lat = UL_LAT + dy / 111_132.0
    lon = UL_LON + dx / (111_320.0 * math.cos(math.radians(UL_LAT)))
    return lat, lon


@dataclass(frozen=True)
class ViewGeometry:
    """Analytic viewing angles of the two detectors (descending orbit, satellite to the east).

    A real tile spans ~7 deg of viewing zenith over 110 km; the synthetic tile is much smaller, so the
    across-track gradient is exaggerated: zenith falls from ~9 deg on the west edge to 2 deg at
    `span_m` = max(6 km, tile width) east of it, ~1.2 deg/km on small tiles. Detector 4 images the
    west part (x < 0.55 W), detector 5 the east part (x > 0.45 W), with different azimuths (~103 and
    ~97 deg) and a 0.3 deg zenith step; pixels use detector 4 west of 0.5 W."""

    width_m: float
    jitter: float = 0.0  # small per-date offset (deg)

    @property
    def span_m(self) -> float:
        return max(6000.0, self.width_m)

    def zenith_azimuth(self, det: int, band: str, x, y) -> tuple[np.ndarray, np.ndarray]:
        u = (np.asarray(x, np.float64) - UL_X) / self.span_m  # 0 (west edge) .. 1
        v = (UL_Y - np.asarray(y, np.float64)) / self.span_m  # 0 (north edge) .. 1
        dz, da = BAND_VIEW_OFFSET[band]
        step = 0.15 if det == DETECTORS[0] else -0.15
        zen = np.clip(9.0 - 7.0 * u + 0.2 * v, 1.0, 10.5) + step
        az = (103.0 if det == DETECTORS[0] else 97.0) + 1.5 * u - 0.5 * v
        return zen + dz + self.jitter, (az + da + 10 * self.jitter) % 360.0

    def footprint(self, det: int, x, margin_m: float = 0.0) -> np.ndarray:
        u = np.asarray(x, np.float64) - UL_X
        if det == DETECTORS[0]:
            return u <= 0.55 * self.width_m + margin_m
        return (u >= 0.45 * self.width_m - margin_m) & (u <= self.width_m + margin_m)

    def pixel_angles(self, band: str, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel angles, each pixel seen by one detector (boundary in the middle of the overlap)."""
        west = (np.asarray(x, np.float64) - UL_X) < 0.5 * self.width_m
        z4, a4 = self.zenith_azimuth(DETECTORS[0], band, x, y)
        z5, a5 = self.zenith_azimuth(DETECTORS[1], band, x, y)
        return np.where(west, z4, z5), np.where(west, a4, a5)


# --------------------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatePlan:
    index: int
    day: date
    platform: str  # "SENTINEL-2A" / "SENTINEL-2B"
    acquired: datetime  # datatake start, UTC
    sky: str  # one of SKY_KINDS
    absolute_orbit: int

    @property
    def key(self) -> str:
        return self.day.strftime("%Y%m%d")


def _sky_kind(i: int, n: int) -> str:
    """clear, partly (clouds + a cirrus patch), very_cloudy (once), clear, then a cycle."""
    if i == 0:
        return "clear"
    if i == 1:
        return "partly"
    if i == 2:
        return "very_cloudy"
    if i == 3:
        return "clear"
    return ("cirrus", "partly", "clear", "partly", "clear")[(i - 4) % 5]


def plan_dates(n: int, start: date | None = None, revisit_days: int = REVISIT_DAYS) -> list[DatePlan]:
    """n dates every `revisit_days` days (default 5, the S2A+S2B revisit) alternating S2A/S2B, first
    clear, third very cloudy (when n >= 3)."""
    if n < 1:
        raise ValueError(f"dates must be >= 1, got {n}")
    if not isinstance(revisit_days, (int, np.integer)) or revisit_days < 1:
        raise ValueError(f"revisit must be a positive number of days, got {revisit_days!r}")
    start = start or DEFAULT_START
    plans = []
    for i in range(n):
        d = start + timedelta(days=int(revisit_days) * i)
        platform = "SENTINEL-2A" if i % 2 == 0 else "SENTINEL-2B"
        # absolute orbit: 14.3 orbits/day, anchored on the real T31TCJ SAFEs (S2A 2024-01-20 = 44807,
        # S2B 2024-03-05 = 36542)
        anchor, anchor_day = (44807, date(2024, 1, 20)) if i % 2 == 0 else (36542, date(2024, 3, 5))
        orbit = anchor + round((d - anchor_day).days * 143 / 10)
        acq = datetime.combine(d, ACQUISITION_TIME, tzinfo=timezone.utc)
        plans.append(DatePlan(i, d, platform, acq, _sky_kind(i, n), orbit))
    return plans


# --------------------------------------------------------------------------------------------------
# Static landscape
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Landscape:
    size: int
    seed: int
    dem: np.ndarray  # float32 m
    classes: np.ndarray  # uint8 codes of CLASSES
    parcel: np.ndarray  # int32 parcel id (crop/grass)
    soil_brightness: np.ndarray  # float32 per pixel
    greenup_doy: np.ndarray  # float32 per pixel (crops)
    fc_max: np.ndarray  # float32 max vegetation cover per pixel
    texture: np.ndarray  # float32 multiplicative texture (~1)
    x: np.ndarray  # (size,) pixel-centre x
    y: np.ndarray  # (size,) pixel-centre y
    harvest_doy: np.ndarray  # float32 harvest day of year of crop pixels, NO_EVENT_DOY (inf) if none
    mow_doy: np.ndarray  # float32 mowing day of year of grass pixels, NO_EVENT_DOY (inf) if none

    @property
    def width_m(self) -> float:
        return self.size * 10.0

    @property
    def water(self) -> np.ndarray:
        return self.classes == CLASS_CODE["water"]

    def harvested(self, day: date) -> np.ndarray:
        """Crop pixels harvested on or before `day` (bool)."""
        return self.harvest_doy <= day.timetuple().tm_yday

    def mown(self, day: date) -> np.ndarray:
        """Grass pixels mown on or before `day` (bool), regrown or not."""
        return self.mow_doy <= day.timetuple().tm_yday


def check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < 12 or size % 6:
        raise ValueError(f"size must be a multiple of 6 pixels (10 m) and >= 12, got {size!r}")


def make_landscape(size: int, seed: int) -> Landscape:
    check_size(size)
    rng = np.random.default_rng([seed, 1])
    shape = (size, size)
    relief = _normalise01(fractal_field(rng, shape, beta=3.6, scale_px=max(size / 2, 60)))
    dem = (150.0 + 2150.0 * relief**2.2).astype(np.float32)
    # irregular parcels: a jittered grid of ~25 px (250 m) cells, warped by smooth fields
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float32)
    wr = fractal_field(rng, shape, beta=3.0, scale_px=40) * 6
    wc = fractal_field(rng, shape, beta=3.0, scale_px=40) * 6
    cell = 25.0
    pr = np.floor((rr + wr) / cell).astype(np.int32) + 2
    pc = np.floor((cc + wc) / cell).astype(np.int32) + 2
    ncell = int(size / cell) + 6
    parcel = pr * ncell + pc
    nparcel = ncell * ncell
    p_kind = rng.random(nparcel)
    p_soil = rng.uniform(0.75, 1.25, nparcel)
    p_green = rng.uniform(20, 150, nparcel)
    p_fcmax = rng.uniform(0.6, 0.95, nparcel)

    urban_f = fractal_field(rng, shape, beta=3.2, scale_px=60)
    water_f = fractal_field(rng, shape, beta=3.4, scale_px=80)
    forest_f = fractal_field(rng, shape, beta=3.0, scale_px=60)
    classes = np.where(p_kind[parcel] < 0.3, CLASS_CODE["grass"], CLASS_CODE["crop"]).astype(np.uint8)
    classes[forest_f > 0.6] = CLASS_CODE["forest"]
    classes[(dem > 1600) & (forest_f < 1.2)] = CLASS_CODE["rock"]
    classes[urban_f > 1.5] = CLASS_CODE["urban"]
    low = dem < np.quantile(dem, 0.5)
    classes[(water_f > 1.7) & low] = CLASS_CODE["water"]
    # a river: a sinuous line along a warped row
    river_row = size * 0.7 + fractal_field(rng, (1, size), beta=3.0, scale_px=size)[0] * size * 0.06
    river = np.abs(rr - river_row[None, :]) < max(1.5, size / 200)
    classes[river] = CLASS_CODE["water"]

    texture = (1.0 + 0.05 * fractal_field(rng, shape, beta=2.5, scale_px=20)
               + 0.02 * rng.standard_normal(shape)).astype(np.float32)
    x = UL_X + 10.0 * (np.arange(size) + 0.5)
    y = UL_Y - 10.0 * (np.arange(size) + 0.5)
    harvest_doy, mow_doy = _surface_events(seed, nparcel, parcel, classes)
    return Landscape(size, seed, dem, classes, parcel.astype(np.int32),
                     p_soil[parcel].astype(np.float32), p_green[parcel].astype(np.float32),
                     p_fcmax[parcel].astype(np.float32), texture, x, y, harvest_doy, mow_doy)


def _surface_events(seed: int, nparcel: int, parcel: np.ndarray,
                    classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel harvest and mowing days (float32 day of year, NO_EVENT_DOY where none).

    Drawn per parcel from their own random stream ([seed, 3]), so the rest of the landscape is the one
    generated before these events existed. Only crop (harvest) and grass (mowing) pixels of a parcel get
    its day; forest, urban, water and rock pixels inside a parcel never change."""
    rng = np.random.default_rng([seed, 3])
    harvested = rng.random(nparcel) < HARVEST_FRACTION
    harvest_day = rng.integers(HARVEST_DOY_RANGE[0], HARVEST_DOY_RANGE[1] + 1, nparcel)
    mown = rng.random(nparcel) < MOW_FRACTION
    mow_day = rng.integers(MOW_DOY_RANGE[0], MOW_DOY_RANGE[1] + 1, nparcel)
    crop = (classes == CLASS_CODE["crop"]) & harvested[parcel]
    grass = (classes == CLASS_CODE["grass"]) & mown[parcel]
    harvest_doy = np.where(crop, harvest_day[parcel], NO_EVENT_DOY).astype(np.float32)
    mow_doy = np.where(grass, mow_day[parcel], NO_EVENT_DOY).astype(np.float32)
    return harvest_doy, mow_doy


def surface_reflectance(
    land: Landscape, day: date, snow_line_m: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(13, H, W) float32 surface reflectance for a day, and the snow mask (bool).

    Harvested crop pixels (``day`` on or after their harvest day) have cover HARVEST_COVER over soil
    darkened by HARVEST_SOIL_FACTOR; mown grass pixels have their cover multiplied by
    1 - (1 - MOW_COVER_FACTOR)·max(0, 1 - (doy - mow_doy) / MOW_REGROWTH_DAYS)."""
    doy = day.timetuple().tm_yday
    spec = {k: np.asarray(v, np.float32)[:, None, None] for k, v in SPECTRA.items()}
    c = land.classes
    # vegetation cover per pixel
    season = 0.5 - 0.5 * math.cos(2 * math.pi * (doy - 15) / 365.0)  # 0 mid-January, 1 mid-July
    fc_crop = 0.1 + (land.fc_max - 0.1) / (1.0 + np.exp(-(doy - land.greenup_doy) / 12.0))
    harvested = land.harvested(day)
    fc_crop = np.where(harvested, HARVEST_COVER, fc_crop)
    mow_recovery = np.clip((doy - land.mow_doy) / MOW_REGROWTH_DAYS, 0.0, 1.0)  # 1 where never mown
    mow_factor = np.where(land.mown(day), 1.0 - (1.0 - MOW_COVER_FACTOR) * (1.0 - mow_recovery), 1.0)
    fc = np.where(c == CLASS_CODE["crop"], fc_crop, 0.0)
    fc = np.where(c == CLASS_CODE["grass"], (0.5 + 0.35 * season * land.fc_max) * mow_factor, fc)
    fc = np.where(c == CLASS_CODE["urban"], 0.2, fc)
    fc = np.where(c == CLASS_CODE["rock"], 0.15 + 0.2 * season, fc).astype(np.float32)
    brightness = np.where(harvested, land.soil_brightness * HARVEST_SOIL_FACTOR, land.soil_brightness)
    soil = spec["soil"] * brightness[None].astype(np.float32)
    rho = fc[None] * spec["vegetation"] + (1.0 - fc[None]) * soil
    rho = np.where((c == CLASS_CODE["urban"])[None], 0.2 * spec["vegetation"] + 0.8 * spec["urban"]
                   * land.soil_brightness[None], rho)
    rho = np.where((c == CLASS_CODE["rock"])[None], fc[None] * spec["vegetation"] + (1 - fc[None])
                   * spec["rock"], rho)
    forest = 0.85 * spec["forest"] + 0.15 * (season * spec["vegetation"] + (1 - season) * soil)
    rho = np.where((c == CLASS_CODE["forest"])[None], forest, rho)
    rho = rho * land.texture[None]
    rho = np.where(land.water[None], spec["water"] * (0.9 + 0.1 * land.texture[None]), rho)
    fs, snow = snow_cover(land, snow_line_m)
    if snow_line_m is not None:
        rho = fs[None] * spec["snow"] + (1.0 - fs[None]) * rho
    return np.clip(rho, 0.0, 1.0).astype(np.float32), snow


# --------------------------------------------------------------------------------------------------
# Daily snow truth
# --------------------------------------------------------------------------------------------------


def winter_index(day: date) -> float:
    """0 (mid-July) .. 1 (mid-January): 0.5 + 0.5 cos(2 pi (doy - 15) / 365)."""
    return 0.5 + 0.5 * math.cos(2 * math.pi * (day.timetuple().tm_yday - 15) / 365.0)


@dataclass(frozen=True, eq=False)
class _SnowWeather:
    periods: np.ndarray  # (SNOW_WEATHER_TERMS,) days
    phases: np.ndarray  # rad
    amplitudes: np.ndarray  # m, summing to SNOW_WEATHER_AMPLITUDE_M
    event: np.ndarray  # (n_days,) bool, snowfall on day SNOW_CALENDAR[0] + i
    recovery: np.ndarray  # (n_days,) int, recovery days of that event


@functools.lru_cache(maxsize=16)
def _snow_weather(seed: int) -> _SnowWeather:
    """The weather of a seed, drawn once from the stream [seed, 7] over the whole SNOW_CALENDAR
    (so a day's snow line never depends on which dates are generated)."""
    rng = np.random.default_rng([int(seed), 7])
    k = SNOW_WEATHER_TERMS
    periods = rng.uniform(*SNOW_WEATHER_PERIOD_DAYS, k)
    phases = rng.uniform(0.0, 2 * math.pi, k)
    amplitudes = rng.uniform(0.5, 1.0, k)
    amplitudes *= SNOW_WEATHER_AMPLITUDE_M / amplitudes.sum()
    n_days = (SNOW_CALENDAR[1] - SNOW_CALENDAR[0]).days + 1
    event = rng.random(n_days) < SNOWFALL_RATE_PER_DAY
    recovery = rng.integers(SNOWFALL_RECOVERY_DAYS[0], SNOWFALL_RECOVERY_DAYS[1] + 1, n_days)
    return _SnowWeather(periods, phases, amplitudes, event, recovery)


def snowfall_drop_m(seed: int, day: date) -> float:
    """How far (m) recent snowfall events push the snow line down on `day`: an event on day e lowers it
    by SNOWFALL_DROP_M * max(0, 1 - (day - e) / R_e) (R_e its recovery days); overlapping events do not
    add up (the largest drop wins). Events are drawn on every day of SNOW_CALENDAR but only matter
    when the snow line exists (winter)."""
    w = _snow_weather(seed)
    i = (day - SNOW_CALENDAR[0]).days
    if i < 0 or i >= w.event.size:
        raise ValueError(f"day {day} is outside the synthetic snow calendar {SNOW_CALENDAR[0]}..{SNOW_CALENDAR[1]}")
    lo = max(0, i - SNOWFALL_RECOVERY_DAYS[1] + 1)
    drop = 0.0
    for e in range(lo, i + 1):
        if w.event[e]:
            drop = max(drop, SNOWFALL_DROP_M * max(0.0, 1.0 - (i - e) / float(w.recovery[e])))
    return drop


def snow_line_m(seed: int, day: date) -> float | None:
    """The snow line (m) of `day` for a seed, None outside winter (winter_index(day) <= SNOW_WINTER_MIN):

        SNOW_LINE_SUMMIT_M - SNOW_LINE_SEASON_M * winter(day)
        + sum_k a_k sin(2 pi t / P_k + phi_k)       (weather, t = days since SNOW_CALENDAR[0])
        - snowfall_drop_m(seed, day)                (snowfall events)

    A deterministic function of (seed, day) only: the same day has the same snow line whichever
    dates a series holds."""
    winter = winter_index(day)
    if winter <= SNOW_WINTER_MIN:
        return None
    w = _snow_weather(seed)
    t = float((day - SNOW_CALENDAR[0]).days)
    weather = float(np.sum(w.amplitudes * np.sin(2 * math.pi * t / w.periods + w.phases)))
    return float(SNOW_LINE_SUMMIT_M - SNOW_LINE_SEASON_M * winter + weather - snowfall_drop_m(seed, day))


def snow_cover(land: Landscape, snow_line_m: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(fs, snow): the snow fraction (H, W) float32 0..1 and the snow mask (bool, fs > 0.5) for a snow
    line (None: no snow). fs = clip((dem - line) / SNOW_TRANSITION_M + 3 (texture - 1), 0, 1), halved
    over water and forest (which therefore never count as snow)."""
    if snow_line_m is None:
        return np.zeros(land.dem.shape, np.float32), np.zeros(land.dem.shape, bool)
    fs = np.clip((land.dem - snow_line_m) / SNOW_TRANSITION_M + 0.15 * (land.texture - 1.0) * 20, 0.0, 1.0)
    fs = np.where(land.water | (land.classes == CLASS_CODE["forest"]), 0.5 * fs, fs).astype(np.float32)
    return fs, fs > 0.5


def true_snow(land: Landscape, day: date) -> np.ndarray:
    """The true snow mask (H, W) bool (10 m) of any day, acquired or not (equals the per-date truth
    `DateTruth.snow` on acquisition days)."""
    return snow_cover(land, snow_line_m(land.seed, day))[1]


# --------------------------------------------------------------------------------------------------
# Clouds
# --------------------------------------------------------------------------------------------------


def cloud_reflectance(tau, g: float = G_WATER_CLOUD):
    """Conservative two-stream cloud reflectance for optical thickness tau."""
    t = (1.0 - g) * np.asarray(tau, np.float64)
    return t / (2.0 + t)


@dataclass(frozen=True, eq=False)
class CloudField:
    tau: np.ndarray  # (H, W) float32 apparent optical thickness (10 m)
    altitude: np.ndarray  # (H, W) float32 m above sea level, 0 where no cloud
    shadow_sun: np.ndarray  # (H, W) float32 direct-beam factor 0..1
    cirrus_tau: np.ndarray  # (H, W) float32
    cirrus_altitude: float


def _paste_max(dst_tau, dst_alt, src_tau, alt, r0, c0):
    """Paste src at (r0, c0) into dst, keeping the larger optical thickness."""
    h, w = dst_tau.shape
    sh, sw = src_tau.shape
    ra, ca = max(r0, 0), max(c0, 0)
    rb, cb = min(r0 + sh, h), min(c0 + sw, w)
    if ra >= rb or ca >= cb:
        return
    s = src_tau[ra - r0:rb - r0, ca - c0:cb - c0]
    d = dst_tau[ra:rb, ca:cb]
    better = s > d
    d[better] = s[better]
    if dst_alt is not None:
        dst_alt[ra:rb, ca:cb][better] = alt


def make_clouds(rng: np.random.Generator, land: Landscape, sky: str, sun_zen: float, sun_az: float,
                view_zen: float, view_az: float) -> CloudField:
    size = land.size
    cf = 2  # clouds are drawn at 20 m and upsampled
    n = size // cf
    z_ground = float(np.mean(land.dem))
    cover = {"clear": 0.0, "partly": rng.uniform(0.15, 0.35), "cirrus": rng.uniform(0.05, 0.15),
             "very_cloudy": rng.uniform(0.75, 0.9)}[sky]
    h_max = 8000.0

    def disp(h, zen, az):  # (drow, dcol) in coarse px of the image displacement of a point at h
        d = max(h - z_ground, 0.0) * math.tan(math.radians(zen)) / (10.0 * cf)
        return d * math.cos(math.radians(az)), -d * math.sin(math.radians(az))

    tau_c = np.zeros((n, n), np.float32)
    alt_c = np.zeros((n, n), np.float32)
    sh_c = np.zeros((n, n), np.float32)
    if cover > 0:
        sdr, sdc = disp(h_max, sun_zen, sun_az)
        vdr, vdc = disp(h_max, view_zen, view_az)
        # true cloud positions that can appear in, or shade, the tile: tile shifted by -displacement
        r_lo = math.floor(min(0, -sdr, -vdr)) - 2
        r_hi = math.ceil(max(n, n - sdr, n - vdr)) + 2
        c_lo = math.floor(min(0, -sdc, -vdc)) - 2
        c_hi = math.ceil(max(n, n - sdc, n - vdc)) + 2
        dom = (r_hi - r_lo, c_hi - c_lo)
        f = fractal_field(rng, dom, beta=3.4, scale_px=max(60.0, n / 2.5))
        f += 0.15 * fractal_field(rng, dom, beta=2.2, scale_px=8)
        thr = np.quantile(f, 1.0 - cover)
        u = np.clip(f - thr, 0.0, None)
        tau_dom = np.minimum(40.0 * u**1.5, 60.0).astype(np.float32)
        labels, nlab = ndimage.label(tau_dom > 0)
        objects = ndimage.find_objects(labels)
        alts = np.where(rng.random(max(nlab, 1)) < 0.6, rng.uniform(1000, 3000, max(nlab, 1)),
                        rng.uniform(3000, 8000, max(nlab, 1)))
        if sky == "very_cloudy":
            alts = np.clip(alts, 1000, 4000)
        for k, sl in enumerate(objects):
            if sl is None:
                continue
            obj = np.where(labels[sl] == k + 1, tau_dom[sl], 0.0).astype(np.float32)
            h = float(alts[k])
            r0, c0 = sl[0].start + r_lo, sl[1].start + c_lo  # true position in tile coarse coords
            vr, vc = disp(h, view_zen, view_az)
            _paste_max(tau_c, alt_c, obj, h, r0 + round(vr), c0 + round(vc))
            sr, sc = disp(h, sun_zen, sun_az)
            _paste_max(sh_c, None, obj, h, r0 + round(sr), c0 + round(sc))
    # cirrus: a thin, wide, high layer
    ci_alt = float(rng.uniform(8000, 12000))
    ci_c = np.zeros((n, n), np.float32)
    if sky in ("cirrus", "partly"):
        fci = fractal_field(rng, (n, n), beta=3.0, scale_px=max(40.0, n / 2))
        fci = fci + 0.8 * _normalise01(np.arange(n, dtype=np.float64))[None, :] * 2 - 0.8
        ci_c = np.clip(0.6 * (fci - 0.3), 0.0, 1.5).astype(np.float32)

    def up(a, order=1):
        return ndimage.zoom(a, cf, order=order, mode="nearest", grid_mode=True)[:size, :size]

    tau = np.clip(up(tau_c), 0, None).astype(np.float32)
    if (alt_c > 0).any():  # edges of the upsampled optical thickness take the nearest cloud's altitude
        _, (iy, ix) = ndimage.distance_transform_edt(alt_c <= 0, return_indices=True)
        alt_c = alt_c[iy, ix]
    alt = up(alt_c, order=0).astype(np.float32)
    alt[tau <= 0] = 0.0
    sh_tau = np.clip(up(sh_c), 0, None)
    mu_s = math.cos(math.radians(sun_zen))
    shadow_sun = np.exp(-(1.0 - G_WATER_CLOUD) * sh_tau / mu_s).astype(np.float32)
    return CloudField(tau, alt, shadow_sun, np.clip(up(ci_c), 0, None).astype(np.float32), ci_alt)


# --------------------------------------------------------------------------------------------------
# One date
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DateTruth:
    plan: DatePlan
    surface: np.ndarray  # (13, H, W) float32 surface reflectance (10 m)
    toa: dict[str, np.ndarray]  # band -> TOA reflectance at the band's resolution (float32)
    toa_clear: dict[str, np.ndarray]  # same without clouds, cirrus and shadows
    cloud_tau: np.ndarray
    cloud_altitude: np.ndarray
    cloud_mask: np.ndarray
    cirrus_tau: np.ndarray
    cirrus_mask: np.ndarray
    cirrus_altitude: float
    shadow_sun: np.ndarray
    shadow_mask: np.ndarray
    snow: np.ndarray
    water: np.ndarray
    aot: np.ndarray  # AOT at 550 nm of the column above each pixel
    water_vapour: np.ndarray  # g/cm2 above each pixel
    ozone: float  # cm-atm
    snow_line_m: float | None
    sun_zenith: np.ndarray  # (H, W) float32
    sun_azimuth: np.ndarray
    sun_grid: tuple[np.ndarray, np.ndarray]  # 5 km grid (zenith, azimuth), point (0,0) at the UL corner
    # band -> detector -> (zenith, azimuth) on the 5 km grid, NaN outside the detector's footprint
    view_grids: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]
    view_mean: dict[str, tuple[float, float]]  # band -> mean (zenith, azimuth) over the tile's pixels
    stats: dict = field(default_factory=dict)


def angle_grid_points(size: int) -> tuple[np.ndarray, np.ndarray]:
    """x of grid columns, y of grid rows of the 5 km angle grid (first point on the UL corner)."""
    n = math.ceil(size * 10.0 / ANGLE_STEP_M) + 1
    return UL_X + ANGLE_STEP_M * np.arange(n), UL_Y - ANGLE_STEP_M * np.arange(n)


ATMOSPHERE_GRID_FACTOR = 6  # atmospheric terms are evaluated every 60 m


def bilinear_matrix(n_fine: int, factor: int) -> np.ndarray:
    """(n_fine, n_fine // factor) matrix M with fine = M @ coarse @ M.T (bilinear, edge-clamped,
    coarse samples at the centres of factor x factor blocks)."""
    nc = n_fine // factor
    p = np.clip((np.arange(n_fine) + 0.5) / factor - 0.5, 0.0, nc - 1.0)
    j0 = np.minimum(np.floor(p).astype(int), max(nc - 2, 0))
    w = p - j0
    m = np.zeros((n_fine, nc))
    m[np.arange(n_fine), j0] += 1.0 - w
    if nc > 1:
        m[np.arange(n_fine), j0 + 1] += w
    return m


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return a
    h, w = a.shape
    return a.reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def synthesize_date(land: Landscape, plan: DatePlan, lut: ForwardLUT | None = None) -> DateTruth:
    lut = lut or default_lut()
    size = land.size
    rng = np.random.default_rng([land.seed, 2, plan.index])
    shape = (size, size)
    xx = np.broadcast_to(land.x[None, :], shape)
    yy = np.broadcast_to(land.y[:, None], shape)

    # geometry
    lat, lon = xy_to_latlon(xx, yy)
    sun_zen, sun_az = solar_position(plan.acquired, lat, lon)
    gx, gy = angle_grid_points(size)
    glat, glon = xy_to_latlon(gx[None, :], gy[:, None])
    sun_grid = tuple(a.astype(np.float32) for a in solar_position(plan.acquired, glat, glon))
    view = ViewGeometry(land.width_m, jitter=float(rng.uniform(-0.05, 0.05)))
    view_grids: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    gxx, gyy = np.meshgrid(gx, gy)
    for b in S2_BAND_NAMES:
        view_grids[b] = {}
        for det in DETECTORS:
            z, a = view.zenith_azimuth(det, b, gxx, gyy)
            # a detector's grid has values at the points within one grid step of its footprint
            inside = view.footprint(det, gxx, margin_m=ANGLE_STEP_M)
            view_grids[b][det] = (np.where(inside, z, np.nan).astype(np.float32),
                                  np.where(inside, a, np.nan).astype(np.float32))

    # atmosphere and season
    winter = winter_index(plan.day)
    aot_sl = float(rng.uniform(0.06, 0.45))
    aot = aot_sl * np.exp(0.25 * fractal_field(rng, shape, beta=3.5, scale_px=size))
    aot = np.clip(aot * np.exp(-land.dem / AEROSOL_SCALE_HEIGHT_M), 0.02, 0.6).astype(np.float32)
    wv_mean = float(rng.uniform(0.6, 1.8) + 1.2 * (1 - winter))
    wv = wv_mean * np.exp(0.15 * fractal_field(rng, shape, beta=3.5, scale_px=size))
    wv = np.clip(wv * np.exp(-land.dem / WATER_VAPOUR_SCALE_HEIGHT_M), 0.1, 4.0).astype(np.float32)
    ozone = float(rng.uniform(0.27, 0.36))
    if winter > SNOW_WINTER_MIN:
        # the two draws that made the per-date snow line before it became a function of (seed, day):
        # kept, values unused, so that the clouds and AOT drawn next from this stream are unchanged
        rng.uniform(-150, 150)
        rng.random()
    snow_line = snow_line_m(land.seed, plan.day)

    surface, snow = surface_reflectance(land, plan.day, snow_line)
    env_size = max(3, int(2 * ENV_RADIUS_M / 10) | 1)
    env = ndimage.uniform_filter(surface, size=(1, env_size, env_size), mode="reflect")

    mean_vz, mean_va = view.pixel_angles("B04", xx[size // 2, size // 2], yy[size // 2, size // 2])
    clouds = make_clouds(rng, land, plan.sky, float(sun_zen.mean()), float(sun_az.mean()),
                         float(mean_vz), float(mean_va))
    cloudy = clouds.tau > 0
    cirrusy = clouds.cirrus_tau > 0

    # atmospheric terms on the 60 m atmosphere grid, bilinearly interpolated to 10 m
    fa = ATMOSPHERE_GRID_FACTOR
    up_m = bilinear_matrix(size, fa)
    xc, yc = block_mean(xx, fa), block_mean(yy, fa)
    sz_c, sa_c = block_mean(sun_zen, fa), block_mean(sun_az, fa)
    dem_c, aot_c, wv_c = block_mean(land.dem, fa), block_mean(aot, fa), block_mean(wv, fa)
    shadowed = bool((clouds.shadow_sun < 1).any())
    toa: dict[str, np.ndarray] = {}
    toa_clear: dict[str, np.ndarray] = {}
    view_mean: dict[str, tuple[float, float]] = {}
    for bi, b in enumerate(S2_BAND_NAMES):
        vz_c, va_c = view.pixel_angles(b, xc, yc)
        view_mean[b] = (float(vz_c.mean()), circular_mean_deg(va_c))
        tc = lut.terms(b, sz_c, vz_c, sa_c - va_c, dem_c, aot_c, wv_c, ozone)
        terms = AtmosphereTerms(*(up_m @ getattr(tc, f.name) @ up_m.T for f in fields(AtmosphereTerms)))
        clear = lut.toa_from_terms(terms, surface[bi], env[bi])
        rho = lut.toa_from_terms(terms, surface[bi], env[bi], sun=clouds.shadow_sun) if shadowed else clear
        rho = np.array(rho, np.float64)
        for mask, tau, alt_of, g in ((cloudy, clouds.tau, clouds.altitude, G_WATER_CLOUD),
                                     (cirrusy, clouds.cirrus_tau, None, G_ICE)):
            if not mask.any():
                continue
            t = tau[mask].astype(np.float64)
            h = alt_of[mask] if alt_of is not None else np.full(t.shape, clouds.cirrus_altitude)
            z = land.dem[mask]
            wv_above = wv[mask] * np.exp(-np.maximum(h - z, 0.0) / WATER_VAPOUR_SCALE_HEIGHT_M)
            vz_m = (up_m @ vz_c @ up_m.T)[mask]
            tg_above = gas_transmission(b, sun_zen[mask], vz_m, wv_above, ozone, h)
            r = cloud_reflectance(t, g)
            absorb = np.exp(-CLOUD_SWIR_ABSORPTION.get(b, 0.0) * t)
            rr_, tt_ = r * absorb, (1.0 - r) * absorb
            rho_b = rho[mask] / tg_above
            rho[mask] = tg_above * (rr_ + tt_ * tt_ * rho_b / (1.0 - rr_ * rho_b))
        f = BAND_RES[b] // 10
        toa[b] = block_mean(rho, f).astype(np.float32)
        toa_clear[b] = block_mean(clear, f).astype(np.float32)

    cloud_mask = clouds.tau > CLOUD_MASK_TAU
    cirrus_mask = clouds.cirrus_tau > CIRRUS_MASK_TAU
    shadow_mask = (clouds.shadow_sun < SHADOW_SUN_MAX) & ~cloud_mask
    stats = {
        "cloud_percent": round(100.0 * float(cloud_mask.mean()), 3),
        "cirrus_percent": round(100.0 * float(cirrus_mask.mean()), 3),
        "shadow_percent": round(100.0 * float(shadow_mask.mean()), 3),
        "snow_percent": round(100.0 * float(snow.mean()), 3),
        "harvested_percent": round(100.0 * float(land.harvested(plan.day).mean()), 3),
        "mown_percent": round(100.0 * float(land.mown(plan.day).mean()), 3),
        "water_percent": round(100.0 * float(land.water.mean()), 3),
        "mean_aot": round(float(aot.mean()), 4),
        "mean_water_vapour": round(float(wv.mean()), 4),
        "ozone": round(ozone, 4),
        "mean_sun_zenith": round(float(sun_zen.mean()), 4),
        "mean_sun_azimuth": round(float(sun_az.mean()), 4),
        "cirrus_altitude_m": round(clouds.cirrus_altitude, 1),
        "snow_line_m": None if snow_line is None else round(snow_line, 1),
    }
    return DateTruth(plan, surface, toa, toa_clear, clouds.tau, clouds.altitude, cloud_mask,
                     clouds.cirrus_tau, cirrus_mask, clouds.cirrus_altitude, clouds.shadow_sun,
                     shadow_mask, snow, land.water.copy(), aot, wv, ozone, snow_line,
                     sun_zen.astype(np.float32), sun_az.astype(np.float32), sun_grid, view_grids, view_mean,
                     stats)


def generate_truth(size: int, dates: int, seed: int, start: date | None = None, forward: str = "6s",
                   revisit_days: int = REVISIT_DAYS):
    """Yield (landscape, DateTruth) for each date, in date order (what `generate_series` writes with the
    same `forward` model: "6s" or "analytic", and the same revisit)."""
    from gpumaja.synth.sixs_forward import sixs_forward

    land = make_landscape(size, seed)
    lut = sixs_forward("S2A") if forward == "6s" else default_lut()
    for plan in plan_dates(dates, start, revisit_days):
        yield land, synthesize_date(land, plan, lut)
